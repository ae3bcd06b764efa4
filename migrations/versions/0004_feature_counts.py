"""feature_counts: live tenants per (track, stage, feature, account manager)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28 00:30:00

The E2EE page ranks blocking features by how many not-yet-enabled tenants use each. At a
million tenants that was a join of every tenant_features row with current_state on each view
(0.3–0.5 s). This table keeps the answer per (track, stage, feature, manager), moved in the
same transaction as stage_counts, so the ranking sums a few hundred rows. Filled here from
current_state and tenant_features, so an existing database is correct from the upgrade on.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
# What the downgrade destroys (lockstep.migrate.downgrade_losses; `db downgrade` asks before it).
DOWNGRADE_DROPS_DATA: str | None = None  # feature_counts, derived from current_state and tenant_features (refilled on upgrade)


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "feature_counts",
        sa.Column("track_code", sa.String(length=32), nullable=False),
        sa.Column("stage_code", sa.String(length=32), nullable=False),
        sa.Column("feature", sa.String(length=64), nullable=False),
        sa.Column("account_manager", sa.String(length=254), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("track_code", "stage_code", "feature", "account_manager", name="pk_feature_counts"),
    )
    op.execute(
        "INSERT INTO feature_counts (track_code, stage_code, feature, account_manager, n) "
        "SELECT cs.track_code, cs.stage_code, tf.feature, cs.account_manager, count(*) "
        "FROM current_state cs JOIN tenant_features tf ON tf.tenant_id = cs.tenant_id "
        "GROUP BY cs.track_code, cs.stage_code, tf.feature, cs.account_manager"
    )


def downgrade() -> None:
    """Revert this revision."""
    op.drop_table("feature_counts")
