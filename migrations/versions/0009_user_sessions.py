"""user_sessions and sign_in_failures: server-side sessions and the per-address sign-in throttle

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 02:30:00

- user_sessions: one row per signed-in browser. The browser's cookie carries 256 random
  bits; only their SHA-256 is stored (token_hash), with created / last-seen times, the
  absolute expiry and when and why the session ended. Sign-out, a password change,
  deactivation and a role change end every session of that user.
- sign_in_failures: one row per failed sign-in from a client address, so that address can
  be made to wait after 20 in 15 minutes (rows older than the window are deleted as new
  ones arrive).

Both start empty: nobody is signed in across the upgrade (people sign in again once).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
DOWNGRADE_DROPS_DATA: str | None = "drops user_sessions (everyone is signed out) and sign_in_failures (the per-address throttle)"


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "user_sessions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("method", sa.String(length=16), nullable=False),
        sa.Column("client_address", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("activated_at", sa.DateTime(), nullable=True),
        sa.Column("last_seen_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("ended_at", sa.DateTime(), nullable=True),
        sa.Column("ended_reason", sa.String(length=32), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_user_sessions_user_id_users"),
        sa.PrimaryKeyConstraint("id", name="pk_user_sessions"),
        sa.UniqueConstraint("token_hash", name="uq_user_sessions_token_hash"),
    )
    op.create_index("ix_user_sessions_user_id", "user_sessions", ["user_id"])
    op.create_table(
        "sign_in_failures",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("address", sa.String(length=64), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_sign_in_failures"),
    )
    op.create_index("ix_sign_in_failures_address_at", "sign_in_failures", ["address", "at"])


def downgrade() -> None:
    """Revert this revision."""
    op.drop_index("ix_sign_in_failures_address_at", table_name="sign_in_failures")
    op.drop_table("sign_in_failures")
    op.drop_index("ix_user_sessions_user_id", table_name="user_sessions")
    op.drop_table("user_sessions")
