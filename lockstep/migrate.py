"""Apply Alembic migrations from code (the app never calls create_all)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, text

from lockstep.config import ROOT
from lockstep.errors import NotFoundError, ValidationError


def alembic_config(url: str) -> Config:
    """An Alembic config pointing at our migrations and `url`."""
    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(ROOT / "migrations"))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    """Upgrade the database at `url` to `revision`."""
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str = "base") -> None:
    """Downgrade the database at `url` to `revision`."""
    command.downgrade(alembic_config(url), revision)


def head_revision() -> str:
    """The newest revision among our migrations (what `db upgrade` brings a database to)."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def database_revision(connection) -> str | None:
    """The revision a database is at (None: never migrated), read over `connection`."""
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision()


# Tables the app only appends to and reads: no UPDATE, DELETE or TRUNCATE for the app role.
APPEND_ONLY_TABLES = ("audit_log",)
_ROLE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def grant_app_role(engine: Engine, role: str) -> list[str]:
    """PostgreSQL: let `role` run the app (read and write) but only INSERT and SELECT on the audit log.

    Run as the database's owner (who created the tables with `db upgrade`); the app then
    connects as `role`. A table's owner keeps every right on it, so the app must not connect
    as the owner. Returns the statements run.
    """
    if engine.dialect.name != "postgresql":
        raise ValidationError(
            "db grant-app-role is for PostgreSQL; on SQLite whoever can write the database file can "
            "change every table, so protect the file and keep the audit key outside it (docs/security.md)"
        )
    if not _ROLE_NAME.match(role):
        raise ValidationError(
            f"role {role!r} is not a plain PostgreSQL role name (lower-case letters, digits and _)"
        )
    with engine.begin() as conn:
        if not conn.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role}).scalar():
            raise NotFoundError(
                f"there is no PostgreSQL role {role!r}: CREATE ROLE {role} LOGIN PASSWORD '…' first"
            )
        schema = conn.execute(text("SELECT current_schema()")).scalar_one()
        database = conn.execute(text("SELECT current_database()")).scalar_one()
        statements = [
            f'GRANT CONNECT, TEMPORARY ON DATABASE "{database}" TO {role}',
            f'GRANT USAGE ON SCHEMA "{schema}" TO {role}',
            f'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA "{schema}" TO {role}',
            f'GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA "{schema}" TO {role}',
            # Schema changes are the owner's (`db upgrade`), not the app's.
            f"REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON alembic_version FROM {role}",
            *(f"REVOKE UPDATE, DELETE, TRUNCATE ON {t} FROM {role}" for t in APPEND_ONLY_TABLES),
        ]
        # Row-level security (migration 0006): the app sets LOCAL ROLE lockstep_app for a
        # manager's transactions, which needs membership.
        if conn.execute(text("SELECT 1 FROM pg_roles WHERE rolname = 'lockstep_app'")).scalar():
            statements.append(f"GRANT lockstep_app TO {role}")
        for sql in statements:
            conn.execute(text(sql))
    return statements


@dataclass(frozen=True)
class SchemaStatus:
    """Where a database's schema stands: its revision (None: never migrated) and the newest one."""

    current: str | None
    head: str

    @property
    def at_head(self) -> bool:
        """True when the database has every migration of this version of Lockstep."""
        return self.current == self.head

    def describe(self) -> str:
        """One line a person can act on."""
        if self.current is None:
            return (
                f"the database has no Lockstep schema yet (newest is {self.head}): "
                "run `python -m lockstep db upgrade`"
            )
        if self.at_head:
            return f"the database is at revision {self.current}, the newest"
        if self.current not in _revisions():
            return (
                f"the database is at revision {self.current}, which this version of Lockstep does not know "
                f"(newest here is {self.head}): it was migrated by a newer Lockstep"
            )
        return (
            f"the database is at revision {self.current}, this version of Lockstep needs {self.head}: "
            "run `python -m lockstep db upgrade`"
        )


@lru_cache(maxsize=1)
def migration_scripts() -> ScriptDirectory:
    """The migrations this version of Lockstep ships (read once per process)."""
    return ScriptDirectory.from_config(alembic_config("sqlite://"))


def _revisions() -> set[str]:
    return {s.revision for s in migration_scripts().walk_revisions()}


def schema_status(engine: Engine) -> SchemaStatus:
    """The database's schema revision next to the newest one (raises when unreachable)."""
    with engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
    return SchemaStatus(current, head_revision())


# A migration declares what its downgrade destroys in DOWNGRADE_DROPS_DATA: None when only
# indexes or derived tables go (they come back with the upgrade), else what is lost.
NOT_DECLARED = "does not declare whether its downgrade drops data (DOWNGRADE_DROPS_DATA), so it is taken to"


def downgrade_losses(current: str | None, target: str) -> list[str]:
    """What a downgrade from `current` to `target` would destroy, one line per revision that drops data."""
    if current is None:
        return []
    script = migration_scripts()
    base = None if target == "base" else script.get_revision(target).revision
    losses = []
    for rev in script.iterate_revisions(current, base or "base"):
        if rev.revision == base:
            continue
        drops = getattr(rev.module, "DOWNGRADE_DROPS_DATA", NOT_DECLARED)
        if drops:
            losses.append(f"{rev.revision} ({rev.doc.strip()}): {drops}")
    return losses
