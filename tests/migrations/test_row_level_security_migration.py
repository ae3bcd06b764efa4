"""Migration 0006 (row-level security, PostgreSQL): the downgrade takes the policies and grants
away and keeps every row; the upgrade puts them back over existing data; and a migrating
owner that is not a superuser gets a database whose app role it can switch to, while its own
work (the command line, demo loads, imports) still sees every row."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import create_engine, make_url, text

from lockstep.db import make_engine, read_session, write_session
from lockstep.migrate import downgrade, upgrade
from lockstep.permissions import Actor
from lockstep.row_security import APP_ROLE
from tests.builders import MANAGERS, add_tenants, seed_plan
from tests.conftest import PG_ADMIN_URL, new_database_url

TABLES = ("tenants", "current_state", "stage_counts", "feature_counts",
          "tenant_features", "tenant_notes", "rollout_events", "share_links")
MANAGER = Actor(MANAGERS[0], "account_manager")
# Migration 0012's rollups of stage_counts carry policies too (gone with their tables below 0012).
ROLLUPS = ("manager_counts", "stage_totals")


def _security(engine) -> dict:
    """What 0006 sets up, as seen in the catalogue: RLS flags, policies, the app role's privileges."""
    with engine.connect() as conn:
        return {
            "rls": dict(conn.execute(text(
                "SELECT relname, relrowsecurity FROM pg_class WHERE relname = ANY(:t) AND relkind = 'r'"
            ), {"t": list(TABLES)}).all()),
            "policies": set(conn.scalars(text("SELECT tablename FROM pg_policies"))),
            "app_may_read": {t for t in TABLES + ("audit_log",) if conn.scalar(
                text("SELECT has_table_privilege(:r, :t, 'SELECT')"), {"r": APP_ROLE, "t": t})},
        }


def _seeded(url: str, n: int = 30) -> None:
    engine = make_engine(url)
    with write_session(engine) as s:
        seed_plan(s)
        add_tenants(s, n, seed=6)
    engine.dispose()


def _tenants_seen(url: str, actor: Actor | None) -> int:
    engine = make_engine(url)
    try:
        with read_session(engine, actor=actor) as s:
            return s.scalar(text("SELECT count(*) FROM tenants"))  # no WHERE: the policy decides
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_downgrade_removes_policies_and_grants_and_upgrade_restores_them_over_rows(request, tmp_path):
    url = new_database_url("postgresql", request, tmp_path)
    engine = make_engine(url)
    try:
        head = _security(engine)
        assert head == {"rls": dict.fromkeys(TABLES, True), "policies": set(TABLES) | set(ROLLUPS),
                        "app_may_read": set(TABLES)}  # the audit log is not for reading
        # Seeded at the head (the builders write today's schema); the downgrade keeps the rows.
        _seeded(url)
        downgrade(url, "0005")
        assert _security(engine) == {"rls": dict.fromkeys(TABLES, False), "policies": set(),
                                     "app_may_read": set()}
        upgrade(url)
        assert _security(engine) == head
    finally:
        engine.dispose()
    own = sum(1 for i in range(30) if MANAGERS[i % len(MANAGERS)] == MANAGER.email)
    assert _tenants_seen(url, MANAGER) == own
    assert _tenants_seen(url, None) == 30


@pytest.fixture
def owner_url(request):
    """A database owned and migrated by a role that is no superuser (it may create roles); dropped after."""
    request.getfixturevalue("pg_template")  # a migrated database: the cluster has lockstep_app by now
    owner = f"rls_owner_{uuid.uuid4().hex[:10]}"
    name = f"rls_db_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE ROLE "{owner}" LOGIN NOSUPERUSER CREATEROLE'))
        conn.execute(text(f'CREATE DATABASE "{name}" OWNER "{owner}"'))

    def _drop():
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(text(f'DROP ROLE IF EXISTS "{owner}"'))  # its membership in lockstep_app goes too
        admin.dispose()

    request.addfinalizer(_drop)
    return make_url(PG_ADMIN_URL).set(username=owner, database=name).render_as_string(hide_password=False)


@pytest.mark.postgres
def test_an_owner_that_is_no_superuser_migrates_sees_everything_and_scopes_managers(owner_url):
    upgrade(owner_url)  # becomes a member of lockstep_app, so that it may SET ROLE to it
    _seeded(owner_url)  # as the owner, no actor: like the command line, demo load and imports
    own = sum(1 for i in range(30) if MANAGERS[i % len(MANAGERS)] == MANAGER.email)
    assert _tenants_seen(owner_url, None) == 30  # the owner bypasses the policies (no FORCE)
    assert _tenants_seen(owner_url, Actor("admin@x.test", "admin")) == 30
    assert _tenants_seen(owner_url, MANAGER) == own
    downgrade(owner_url, "0005")
    assert _tenants_seen(owner_url, None) == 30
