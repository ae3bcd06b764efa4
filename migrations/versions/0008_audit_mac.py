"""audit MAC: a nullable mac column on audit_log (HMAC-SHA256 of each entry's hash)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 03:15:00

Entries already in the log keep mac NULL: they stay verifiable by their hashes, and
lockstep.services.audit.verify accepts them as written before the key was set. Every entry
written with LOCKSTEP_AUDIT_KEY set carries a MAC. Downgrade drops the column (and so the
MACs): the chain itself is untouched. (On PostgreSQL the app's role lockstep_app may already
only INSERT into audit_log, from 0006; `db grant-app-role` gives a login role the same limit.)
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
# What the downgrade destroys (lockstep.migrate.downgrade_losses; `db downgrade` asks before it).
DOWNGRADE_DROPS_DATA: str | None = "drops the audit log's mac column (the keyed MAC of every entry)"


def upgrade() -> None:
    op.add_column("audit_log", sa.Column("mac", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("audit_log") as batch:
        batch.drop_column("mac")
