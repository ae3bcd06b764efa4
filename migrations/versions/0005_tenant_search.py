"""tenant search: trigram indexes on name and external id (pg_trgm on PostgreSQL, FTS5 on SQLite)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28 00:30:00

The admin's free-text tenant search is a substring match on name or external id; as a LIKE
'%labs%' it read every one of a million tenants (376 ms on SQLite, 289 ms on PostgreSQL).

- PostgreSQL: GIN trigram indexes on lower(name) and lower(external_id), the expressions the
  query's LIKE filters on, so the same LIKE becomes a bitmap index scan (rows re-checked).
- SQLite: an FTS5 table with the trigram tokenizer over tenants (external content: it keeps
  only the index, the text stays in tenants), kept in sync by triggers on tenants and filled
  here with 'rebuild'. lockstep.queries.rollout.tenant_search asks it for terms of three
  characters or more.

The FTS5 table, its shadow tables and the trigram indexes are not in lockstep.models (the
models cannot express them); tests/migrations ignores them when comparing. A later SQLite
migration that re-creates tenants (batch mode copies and renames the table) drops the
triggers with the old table: it must re-create them (see _create_sqlite_fts).
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
# What the downgrade destroys (lockstep.migrate.downgrade_losses; `db downgrade` asks before it).
DOWNGRADE_DROPS_DATA: str | None = None  # search indexes only (rebuilt from tenants on upgrade)

PG_INDEXES = {"ix_tenants_name_trgm": "name", "ix_tenants_external_id_trgm": "external_id"}
TRIGGERS = ("tenants_fts_insert", "tenants_fts_delete", "tenants_fts_update")


def _create_sqlite_fts() -> None:
    op.execute(
        "CREATE VIRTUAL TABLE tenants_fts USING fts5(name, external_id, content='tenants', "
        "content_rowid='id', tokenize='trigram case_sensitive 0')"
    )
    # External content: FTS5 removes what the 'delete' command hands it, so a delete or an
    # update must pass exactly the text that was indexed (the old row's).
    op.execute(
        "CREATE TRIGGER tenants_fts_insert AFTER INSERT ON tenants BEGIN "
        "INSERT INTO tenants_fts (rowid, name, external_id) VALUES (new.id, new.name, new.external_id); "
        "END"
    )
    op.execute(
        "CREATE TRIGGER tenants_fts_delete AFTER DELETE ON tenants BEGIN "
        "INSERT INTO tenants_fts (tenants_fts, rowid, name, external_id) "
        "VALUES ('delete', old.id, old.name, old.external_id); "
        "END"
    )
    # Imports update every column of a changed tenant; re-index only when the text changed.
    op.execute(
        "CREATE TRIGGER tenants_fts_update AFTER UPDATE OF id, name, external_id ON tenants "
        "WHEN old.id IS NOT new.id OR old.name IS NOT new.name OR old.external_id IS NOT new.external_id "
        "BEGIN "
        "INSERT INTO tenants_fts (tenants_fts, rowid, name, external_id) "
        "VALUES ('delete', old.id, old.name, old.external_id); "
        "INSERT INTO tenants_fts (rowid, name, external_id) VALUES (new.id, new.name, new.external_id); "
        "END"
    )
    op.execute("INSERT INTO tenants_fts (tenants_fts) VALUES ('rebuild')")


def upgrade() -> None:
    """Apply this revision."""
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        for name, column in PG_INDEXES.items():
            op.execute(f"CREATE INDEX {name} ON tenants USING gin (lower({column}) gin_trgm_ops)")
        # Statistics on the two expressions, so the planner weighs a term's matches from now on
        # (the next autovacuum ANALYZE may be long in coming on a table that seldom changes).
        op.execute("ANALYZE tenants")
    elif dialect == "sqlite":
        _create_sqlite_fts()


def downgrade() -> None:
    """Revert this revision."""
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        for name in PG_INDEXES:
            op.execute(f"DROP INDEX IF EXISTS {name}")
        # Without CASCADE: if anything outside these indexes uses pg_trgm, this refuses
        # instead of dropping it.
        op.execute("DROP EXTENSION IF EXISTS pg_trgm")
    elif dialect == "sqlite":
        for trigger in TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        op.execute("DROP TABLE IF EXISTS tenants_fts")  # and its shadow tables
