"""api tokens, idempotency answers and e-mail deliveries

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 02:30:00

- api_tokens: bearer tokens of the ingest API (lockstep/api). Only the sha256 of a token is
  kept, as for share links; a revoked token keeps its row (and name) so the audit trail
  still names it.
- api_idempotency: the first answer to a POST sent with an Idempotency-Key, per token, so a
  retried request gets that answer back instead of being run again. Pruned by age on insert
  (hence the created_at index).
- deliveries: reports sent by e-mail (`python -m lockstep deliver`), so a week is not sent
  twice by accident.

New tables only: existing rows are untouched, and the downgrade drops the three tables.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
# What the downgrade destroys (lockstep.migrate.downgrade_losses; `db downgrade` asks before it).
DOWNGRADE_DROPS_DATA: str | None = "drops api_tokens (every API token), api_idempotency and deliveries (the delivery log)"


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=32), nullable=False),
        sa.Column("user_email", sa.String(length=254), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("created_by", sa.String(length=254), nullable=False),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
        sa.Column("revoked_by", sa.String(length=254), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
        sa.UniqueConstraint("name", name=op.f("uq_api_tokens_name")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_api_tokens_token_hash")),
    )
    op.create_table(
        "api_idempotency",
        sa.Column("token_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("request_sha256", sa.String(length=64), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("response", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["token_id"], ["api_tokens.id"], name=op.f("fk_api_idempotency_token_id_api_tokens")
        ),
        sa.PrimaryKeyConstraint("token_id", "key", name=op.f("pk_api_idempotency")),
    )
    op.create_index(op.f("ix_api_idempotency_created_at"), "api_idempotency", ["created_at"], unique=False)
    op.create_table(
        "deliveries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("period", sa.String(length=16), nullable=False),
        sa.Column("recipients", sa.JSON(), nullable=False),
        sa.Column("subject", sa.String(length=300), nullable=False),
        sa.Column("sent_at", sa.DateTime(), nullable=False),
        sa.Column("sent_by", sa.String(length=254), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deliveries")),
    )
    op.create_index("ix_deliveries_kind_period", "deliveries", ["kind", "period"], unique=False)


def downgrade() -> None:
    """Revert this revision."""
    op.drop_index("ix_deliveries_kind_period", table_name="deliveries")
    op.drop_table("deliveries")
    op.drop_index(op.f("ix_api_idempotency_created_at"), table_name="api_idempotency")
    op.drop_table("api_idempotency")
    op.drop_table("api_tokens")
