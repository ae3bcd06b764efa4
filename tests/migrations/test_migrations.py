"""Migrations: empty -> head -> base -> head, data kept across upgrades, no model drift."""

from __future__ import annotations

from datetime import datetime

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

from lockstep.db import make_engine
from lockstep.migrate import alembic_config, downgrade, upgrade
from lockstep.models import Base
from tests.conftest import new_database_url

# Search structures of migration 0005 that the models cannot declare: SQLite's FTS5 table
# (with its shadow tables) and PostgreSQL's trigram expression indexes.
NOT_IN_MODELS = {"ix_tenants_name_trgm", "ix_tenants_external_id_trgm"}


def _not_in_models(name: str | None, type_: str) -> bool:
    if type_ == "table" and name and (name == "tenants_fts" or name.startswith("tenants_fts_")):
        return True
    return type_ == "index" and name in NOT_IN_MODELS


def _in_models(name, type_, _parent_names) -> bool:
    """include_name for compare_metadata: leave out what _not_in_models names."""
    return not _not_in_models(name, type_)


@pytest.fixture
def empty_url(backend, request, tmp_path):
    """A database with nothing in it (not even the migrations' version table)."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'empty.db'}"
    url = new_database_url(backend, request, tmp_path)
    downgrade(url, "base")
    eng = make_engine(url)
    with eng.begin() as conn:
        conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
    eng.dispose()
    return url


def _tables(url: str) -> set[str]:
    eng = make_engine(url)
    try:
        return set(inspect(eng).get_table_names()) - {"alembic_version"}
    finally:
        eng.dispose()


def _model_tables(url: str) -> set[str]:
    return {n for n in _tables(url) if not _not_in_models(n, "table")}


def test_round_trip_empty_head_base_head(empty_url):
    assert _tables(empty_url) == set()
    upgrade(empty_url)
    assert _model_tables(empty_url) == set(Base.metadata.tables)
    downgrade(empty_url, "base")
    assert _tables(empty_url) == set()
    upgrade(empty_url)
    assert _model_tables(empty_url) == set(Base.metadata.tables)


def test_each_upgrade_keeps_existing_rows(empty_url):
    revisions = [
        r.revision
        for r in reversed(list(ScriptDirectory.from_config(alembic_config(empty_url)).walk_revisions()))
    ]
    upgrade(empty_url, revisions[0])
    eng = make_engine(empty_url)
    with eng.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO users (email, display_name, role, is_active, failed_logins, created_at) "
                "VALUES ('kept@example.com', 'Kept', 'executive', true, 0, :at)"
            ),
            {"at": datetime(2020, 4, 1)},
        )
    for rev in revisions[1:] + ["head"]:
        upgrade(empty_url, rev)
        with eng.connect() as conn:
            row = conn.execute(text("SELECT email, role FROM users")).one()
        assert tuple(row) == ("kept@example.com", "executive"), f"row changed by upgrade to {rev}"
    eng.dispose()


def test_models_and_migrations_do_not_drift(db_url):
    eng = make_engine(db_url)
    with eng.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True, "include_name": _in_models})
        diff = compare_metadata(ctx, Base.metadata)
    eng.dispose()
    assert diff == [], f"models differ from migrations: {diff}"
