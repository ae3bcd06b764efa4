"""Migration 0005 (tenant search indexes): its downgrade leaves nothing behind, and its
upgrade indexes the tenants that are already there."""

from __future__ import annotations

from alembic.script import ScriptDirectory
from sqlalchemy import text

from lockstep.db import make_engine, read_session, write_session
from lockstep.migrate import alembic_config, downgrade, upgrade
from lockstep.permissions import Actor
from lockstep.queries import customers
from tests.builders import add_tenants, seed_plan


def _search_objects(engine) -> set[str]:
    """Names of the search structures in the database, whichever backend."""
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            rows = conn.scalars(
                text(
                    "SELECT name FROM sqlite_master "
                    "WHERE name LIKE 'tenants_fts%' OR sql LIKE '%tenants_fts%'"
                )
            )
        else:
            rows = conn.scalars(
                text(
                    "SELECT indexname FROM pg_indexes WHERE indexdef LIKE '%gin_trgm_ops%' "
                    "UNION ALL SELECT extname FROM pg_extension WHERE extname = 'pg_trgm'"
                )
            )
        return set(rows)


def test_downgrade_removes_the_search_indexes_and_upgrade_indexes_existing_tenants(db_url):
    before = ScriptDirectory.from_config(alembic_config(db_url)).get_revision("0005").down_revision
    engine = make_engine(db_url)
    try:
        assert _search_objects(engine)  # head has them
        # Seeded at the head (the builders write today's schema); the downgrade keeps the tenants.
        with write_session(engine) as s:
            seed_plan(s)
            add_tenants(s, 30, seed=4)  # names "Tenant 4-0" .. "Tenant 4-29"
        downgrade(db_url, before)
        assert _search_objects(engine) == set()
        upgrade(db_url)
        with read_session(engine) as s:
            found = customers.tenant_choices(session=s, actor=Actor("a@x.test", "admin"), search="ant 4-2")
        assert set(found["name"]) == {"Tenant 4-2", *(f"Tenant 4-{i}" for i in range(20, 30))}
        if engine.dialect.name == "sqlite":
            with engine.begin() as conn:
                conn.execute(
                    text("INSERT INTO tenants_fts (tenants_fts, rank) VALUES ('integrity-check', 1)")
                )
    finally:
        engine.dispose()
