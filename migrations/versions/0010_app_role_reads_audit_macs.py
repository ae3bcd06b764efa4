"""lockstep_app may read audit_log's id and mac columns (nothing else of the log)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 04:30:00

When a process has no audit key, lockstep.services.audit refuses to append an unkeyed
entry after a keyed one (it would break `audit verify` for good), which means reading the
newest entry's mac. An account manager's transactions run as lockstep_app (0006), which
could not read the audit log at all, so a manager's note failed with "permission denied"
instead of that clear refusal. A column grant lets it read the ids and MACs only: who did
what stays unreadable to it. PostgreSQL only; SQLite has no roles.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
# What the downgrade destroys (lockstep.migrate.downgrade_losses; `db downgrade` asks before it).
DOWNGRADE_DROPS_DATA: str | None = None  # a column grant only


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("GRANT SELECT (id, mac) ON audit_log TO lockstep_app")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("REVOKE SELECT (id, mac) ON audit_log FROM lockstep_app")
