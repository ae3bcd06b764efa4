"""Row-level security on PostgreSQL: an account manager's transaction sees only their tenants' rows.

The proof is an UNFILTERED `SELECT * FROM <table>` inside a session scoped to a manager: no
WHERE of ours, only the database's policy. Then: the roles that see everything see every
row, a transaction that names no actor sees nothing (fail closed), the settings die with
the transaction, a manager cannot write onto another manager's tenant even past the
service's own check, and every query behind the manager's pages answers the same with the
policies on as without them. On SQLite, scoping a session must change nothing.
"""

from __future__ import annotations

from dataclasses import asdict, is_dataclass

import pandas as pd
import pytest
from sqlalchemy import text
from sqlalchemy.exc import ProgrammingError

from lockstep.db import make_engine, read_session, write_session
from lockstep.errors import NotFoundError
from lockstep.permissions import Actor
from lockstep.queries import customers as cq
from lockstep.queries import e2ee as eq
from lockstep.queries import overview as oq
from lockstep.queries import rollout as rq
from lockstep.queries import weekly as wq
from lockstep.reports.customer import customer_report
from lockstep.row_security import APP_ROLE, SEES_EVERY_TENANT, runs_as_app_role
from lockstep.services.notes import add_note
from lockstep.services.share_links import create_share_link, list_share_links, revoke_share_link
from tests.conftest import new_database_url
from tests.db.rollout_world import ADMIN, AM_A, AM_B, AS_OF, MANAGER_A, MANAGER_B, pinned_world, sql

# table -> SQL naming the manager of each of its rows (run as the owner, who bypasses the policies).
MANAGER_OF_ROW = {
    "tenants": "SELECT account_manager FROM tenants",
    "current_state": "SELECT account_manager FROM current_state",
    "stage_counts": "SELECT account_manager FROM stage_counts",
    "feature_counts": "SELECT account_manager FROM feature_counts",
    "manager_counts": "SELECT account_manager FROM manager_counts",
    "rollout_events": "SELECT t.account_manager FROM rollout_events x JOIN tenants t ON t.id = x.tenant_id",
    "tenant_notes": "SELECT t.account_manager FROM tenant_notes x JOIN tenants t ON t.id = x.tenant_id",
    "share_links": "SELECT t.account_manager FROM share_links x JOIN tenants t ON t.id = x.tenant_id",
    "tenant_features": "SELECT t.account_manager FROM tenant_features x JOIN tenants t ON t.id = x.tenant_id",
}
TABLES = tuple(MANAGER_OF_ROW)
LEAD = Actor("lead@example.com", "security_lead")
EXEC = Actor("exec@example.com", "executive")
EVERYONE_ELSE = {"admin": ADMIN, "security_lead": LEAD, "executive": EXEC}




def _notes_and_links(engine) -> None:
    """A note and a share link on a tenant of each manager, through the services."""
    for actor, ext in ((AM_A, "T001"), (AM_B, "T002")):
        with write_session(engine) as s:
            add_note(session=s, actor=actor, tenant_external_id=ext, body=f"note by {actor.email}")
            create_share_link(session=s, actor=actor, tenant_external_id=ext, days=7)


@pytest.fixture(scope="module")
def world(request, tmp_path_factory):
    """On PostgreSQL, built once for this module (about half a minute): the hand-built world
    (two managers, sixty tenants, events, a closed week) plus a note and a link per manager.
    Tests that write add rows of their own; every other test counts from the database as it is.
    """
    engine = make_engine(new_database_url("postgresql", request, tmp_path_factory.mktemp("rls")))
    with pytest.MonkeyPatch.context() as monkeypatch:
        for built in pinned_world(engine, monkeypatch):
            _notes_and_links(built)
            yield built
    engine.dispose()


def _rows(session, table: str) -> int:
    # Deliberately no WHERE: whatever comes back is what the policy let through.
    return len(session.execute(text(f"SELECT * FROM {table}")).all())


def _managers(engine, table: str) -> list[str]:
    return [m for (m,) in sql(engine, MANAGER_OF_ROW[table])]


@pytest.mark.postgres
def test_an_unfiltered_select_as_a_manager_returns_only_their_rows(world):
    for table in TABLES:
        managers = _managers(world, table)
        own = managers.count(MANAGER_A)
        assert 0 < own < len(managers), f"{table}: the world needs rows of both managers"
        with read_session(world, actor=AM_A) as s:
            assert _rows(s, table) == own, table
        with read_session(world, actor=AM_B) as s:
            assert _rows(s, table) == managers.count(MANAGER_B), table


@pytest.mark.postgres
def test_the_rollup_over_managers_is_closed_to_a_manager_and_open_to_everyone_else(world):
    everyone = len(sql(world, "SELECT * FROM stage_totals"))
    assert everyone > 0
    with read_session(world, actor=AM_A) as s:
        assert _rows(s, "stage_totals") == 0
    for role in sorted(EVERYONE_ELSE):
        with read_session(world) as s:  # under the policies, as a deployment connecting as lockstep_app
            s.execute(
                text("SELECT set_config('role', :r, true), set_config('lockstep.actor_role', :role, true)"),
                {"r": APP_ROLE, "role": role},
            )
            assert _rows(s, "stage_totals") == everyone, role


@pytest.mark.postgres
def test_a_manager_session_runs_as_the_app_role_with_the_settings_of_its_actor(world):
    with read_session(world, actor=AM_A) as s:
        row = s.execute(text(
            "SELECT current_user, current_setting('lockstep.actor_role'), "
            "current_setting('lockstep.actor_email')"
        )).one()
    assert tuple(row) == (APP_ROLE, "account_manager", MANAGER_A)


@pytest.mark.postgres
@pytest.mark.parametrize("role", sorted(EVERYONE_ELSE))
def test_admins_leads_and_executives_see_every_row(world, role):
    totals = {table: len(_managers(world, table)) for table in TABLES}
    # Through the app's session for that actor (which keeps the owner's role, see row_security) ...
    with read_session(world, actor=EVERYONE_ELSE[role]) as s:
        assert {table: _rows(s, table) for table in TABLES} == totals
    # ... and under the policies themselves, as a deployment that connects as lockstep_app would.
    with read_session(world) as s:
        s.execute(text("SELECT set_config('role', :r, true), set_config('lockstep.actor_role', :role, true)"),
                  {"r": APP_ROLE, "role": role})
        assert {table: _rows(s, table) for table in TABLES} == totals


@pytest.mark.postgres
@pytest.mark.parametrize(
    "settings",
    [
        {},
        {"lockstep.actor_role": "account_manager"},
        {"lockstep.actor_role": "account_manager", "lockstep.actor_email": ""},
        {"lockstep.actor_role": "customer", "lockstep.actor_email": MANAGER_A},
        {"lockstep.actor_email": MANAGER_A},
    ],
    ids=["nothing-set", "manager-without-email", "manager-with-empty-email", "unknown-role", "email-only"],
)
def test_the_app_role_sees_nothing_when_the_actor_is_missing_or_unknown(world, settings):
    with read_session(world) as s:
        s.execute(text("SELECT set_config('role', :r, true)"), {"r": APP_ROLE})
        for name, value in settings.items():
            s.execute(text("SELECT set_config(:name, :value, true)"), {"name": name, "value": value})
        assert {table: _rows(s, table) for table in TABLES} == dict.fromkeys(TABLES, 0)


@pytest.mark.postgres
def test_the_scope_ends_with_the_transaction_and_follows_into_the_next_one(world):
    # One pooled connection, so a scope left behind by SET (not SET LOCAL) would show below.
    engine = make_engine(world.url.render_as_string(hide_password=False), pool_size=1, max_overflow=0)
    check = text("SELECT current_user, current_setting('lockstep.actor_email', true)")
    try:
        with read_session(engine, actor=AM_A) as s:
            assert _rows(s, "tenants") == _managers(world, "tenants").count(MANAGER_A)
            s.commit()  # a new transaction in the same session is scoped again
            assert _rows(s, "tenants") == _managers(world, "tenants").count(MANAGER_A)
            assert s.execute(check).one()[0] == APP_ROLE
        with read_session(engine) as s:
            user, email = s.execute(check).one()
            assert user != APP_ROLE and not email
            assert _rows(s, "tenants") == len(_managers(world, "tenants"))
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_a_query_that_forgets_the_managers_filter_still_gets_only_their_tenants(world):
    # The query is told it answers an admin (so it adds no WHERE of its own) in a session
    # scoped to manager A: only the database stands between A and B's tenants.
    with read_session(world, actor=AM_A) as s:
        page = rq.tenant_page(session=s, actor=ADMIN, track="encryption", page_size=500)
        funnel = rq.stage_funnel(session=s, actor=ADMIN, track="encryption")
        with pytest.raises(NotFoundError):
            rq.tenant_detail(session=s, actor=ADMIN, tenant_external_id="T002")  # B's
        links = list_share_links(session=s, actor=ADMIN)
    own = {r.external_id for r in sql(world, "SELECT external_id FROM tenants WHERE account_manager = :m",
                                      m=MANAGER_A)}
    assert set(page.rows["external_id"]) == own
    # The funnel reads the rollup over managers (it was told the actor sees everyone): it has
    # no manager column, so under the policy a manager reads none of it, not everyone's.
    assert funnel["n"].sum() == 0
    assert "T001" in set(links["tenant_external_id"]) <= own


@pytest.mark.postgres
def test_a_manager_cannot_write_onto_another_managers_tenant_past_the_service(world):
    b_tenant = sql(world, "SELECT id FROM tenants WHERE external_id = 'T002'")[0][0]
    with pytest.raises(ProgrammingError, match="row-level security"), write_session(world, actor=AM_A) as s:
        s.execute(text("INSERT INTO tenant_notes (tenant_id, author, created_at, body) "
                       "VALUES (:t, :a, now(), 'slipped past the service')"), {"t": b_tenant, "a": MANAGER_A})
    with write_session(world, actor=AM_A) as s:  # B's links are not there to revoke
        revoked = s.execute(text("UPDATE share_links SET revoked_at = now() WHERE tenant_id = :t"),
                            {"t": b_tenant})
    assert revoked.rowcount == 0
    with pytest.raises(ProgrammingError, match="row-level security"), write_session(world, actor=AM_A) as s:
        s.execute(text("UPDATE share_links SET tenant_id = :t WHERE created_by = :a"),  # nor moved onto B's
                  {"t": b_tenant, "a": MANAGER_A})
    with pytest.raises(ProgrammingError, match="permission denied"), write_session(world, actor=AM_A) as s:
        s.execute(text("UPDATE tenants SET account_manager = :a"), {"a": MANAGER_A})  # tenants: read only
    assert sql(world, "SELECT count(*) FROM share_links WHERE tenant_id = :t AND revoked_at IS NULL",
               t=b_tenant)[0][0] == 1
    assert sql(world, "SELECT count(*) FROM tenant_notes WHERE body = 'slipped past the service'")[0][0] == 0


@pytest.mark.postgres
def test_a_managers_own_writes_go_through_under_the_policies(world):
    audited = sql(world, "SELECT count(*) FROM audit_log WHERE actor = :a", a=MANAGER_A)[0][0]
    with write_session(world, actor=AM_A) as s:
        add_note(session=s, actor=AM_A, tenant_external_id="T004", body="kept under RLS")
        link, _ = create_share_link(session=s, actor=AM_A, tenant_external_id="T004", days=3)
    with write_session(world, actor=AM_A) as s:
        revoke_share_link(session=s, actor=AM_A, link_id=link.id)
    assert sql(world, "SELECT count(*) FROM tenant_notes WHERE body = 'kept under RLS'")[0][0] == 1
    assert sql(world, "SELECT revoked_by FROM share_links WHERE id = :i", i=link.id)[0][0] == MANAGER_A
    assert sql(world, "SELECT count(*) FROM audit_log WHERE actor = :a", a=MANAGER_A)[0][0] == audited + 3


def test_only_the_roles_that_see_every_tenant_keep_the_owners_role():
    assert {"admin", "security_lead", "executive"} == SEES_EVERY_TENANT
    assert runs_as_app_role(AM_A)
    assert runs_as_app_role(Actor("x@example.com", "a_role_added_later"))
    assert not any(runs_as_app_role(a) for a in EVERYONE_ELSE.values())


def _plain(value):
    """A comparable form of a query's answer (DataFrames, dataclasses, bytes, plain values)."""
    if isinstance(value, pd.DataFrame):
        # NaN != NaN: blanks become None so that equal frames compare equal.
        frame = value.reset_index(drop=True).astype(object)
        return frame.where(frame.notna(), None).to_dict("records")
    if is_dataclass(value):
        return _plain(asdict(value))
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


# Every read behind an account manager's pages (Overview, Rollout, E2EE, Customers, share links).
MANAGER_READS = {
    "track_stage_mix": lambda s: oq.track_stage_mix(session=s, actor=AM_A, track="encryption"),
    "track_stage_mix_paid": lambda s: oq.track_stage_mix(session=s, actor=AM_A, track="e2ee", paid_only=True),
    "filter_options": lambda s: rq.filter_options(session=s, actor=AM_A),
    "stage_funnel": lambda s: rq.stage_funnel(session=s, actor=AM_A, track="encryption"),
    "stage_mix_by_week": lambda s: rq.stage_mix_by_week(session=s, actor=AM_A, track="encryption"),
    "cutover_status": lambda s: rq.cutover_status(session=s, actor=AM_A, track="encryption"),
    "tenant_page": lambda s: rq.tenant_page(session=s, actor=AM_A, track="encryption"),
    "tenant_page_search": lambda s: rq.tenant_page(session=s, actor=AM_A, track="e2ee", search="beta"),
    "tenant_detail": lambda s: rq.tenant_detail(session=s, actor=AM_A, tenant_external_id="T001"),
    "adoption_by_tier": lambda s: eq.adoption_by_tier(session=s, actor=AM_A),
    "blockers_ranking": lambda s: eq.blockers_ranking(session=s, actor=AM_A),
    "not_enabled_by_manager": lambda s: eq.not_enabled_by_manager(session=s, actor=AM_A),
    "not_enabled_tenants": lambda s: eq.not_enabled_tenants(session=s, actor=AM_A, manager=MANAGER_A,
                                                            limit=None),
    "tenant_choices": lambda s: cq.tenant_choices(session=s, actor=AM_A, search="tenant"),
    "customer_status": lambda s: cq.customer_status(session=s, actor=AM_A, tenant_external_id="T001"),
    "customer_report": lambda s: customer_report(session=s, actor=AM_A, tenant_external_id="T001")[:5],
    "list_share_links": lambda s: list_share_links(session=s, actor=AM_A),
    "top_risks": lambda s: wq.top_risks(session=s, actor=AM_A, as_of=AS_OF),
}


def _same_scoped_and_not(engine) -> None:
    for name, read in MANAGER_READS.items():
        with read_session(engine) as s:
            unscoped = _plain(read(s))
        with read_session(engine, actor=AM_A) as s:
            assert _plain(read(s)) == unscoped, name


@pytest.mark.postgres
def test_every_managers_read_answers_the_same_under_the_policies(world):
    _same_scoped_and_not(world)


def test_on_sqlite_a_scoped_session_changes_nothing(sqlite_engine, monkeypatch):
    for built in pinned_world(sqlite_engine, monkeypatch):
        _notes_and_links(built)
        with read_session(built, actor=AM_A) as s:  # no row-level security: every row, unfiltered
            assert _rows(s, "tenants") == len(_managers(built, "tenants"))
        _same_scoped_and_not(built)
