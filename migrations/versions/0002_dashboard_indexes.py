"""dashboard at scale: stage counts per account manager, indexes for paged lists; drop an unused event index

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 22:35:00

- stage_counts gains account_manager in its key, so an account manager's numbers (and the
  per-manager E2EE table) are read from the live counts instead of counting current_state;
  existing counts are rebuilt from current_state;
- tenants (name, external_id) and (account_manager, name, external_id): the tenant lists are
  ordered by name then external id, so a page is read straight off an index (page 100 of a
  million tenants walks 5,000 entries instead of sorting a million rows);
- tenants (seats): the largest stuck tenants walk tenants from the largest down;
- current_state (track_code, account_manager, stage_code) replaces (track_code, account_manager):
  a manager's stage counts are answered from the index alone;
- tenant_features (feature, tenant_id) replaces (feature): counting tenants per feature needs
  no table look-up;
- rollout_events (track_code, occurred_at) is dropped: no query reads events by track and
  time (timelines use the unique (tenant, track, occurred_at, stage) index, snapshots scan the
  table), and every imported event paid for it.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

COUNTED = ("track_code", "stage_code", "tier", "region")


def _stage_counts(with_manager: bool) -> None:
    """Re-create stage_counts with or without the manager column, recounted from current_state."""
    op.drop_table("stage_counts")
    keys = [*COUNTED, "account_manager"] if with_manager else list(COUNTED)
    columns = [
        sa.Column(k, sa.String(length=254 if k == "account_manager" else 32), nullable=False) for k in keys
    ]
    op.create_table(
        "stage_counts",
        *columns,
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(*keys, name=op.f("pk_stage_counts")),
    )
    listed = ", ".join(keys)
    op.execute(
        f"INSERT INTO stage_counts ({listed}, n) SELECT {listed}, count(*) FROM current_state GROUP BY {listed}"  # noqa: S608 - fixed column names
    )

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
# What the downgrade destroys (lockstep.migrate.downgrade_losses; `db downgrade` asks before it).
DOWNGRADE_DROPS_DATA: str | None = None  # indexes, and stage_counts re-keyed (counts are derived from current_state)


def upgrade() -> None:
    """Apply this revision."""
    _stage_counts(with_manager=True)
    op.drop_index("ix_rollout_events_track_occurred", table_name="rollout_events")
    op.drop_index("ix_tenants_name", table_name="tenants")
    op.drop_index("ix_tenants_account_manager", table_name="tenants")
    op.create_index("ix_tenants_name_external_id", "tenants", ["name", "external_id"])
    op.create_index("ix_tenants_manager_name", "tenants", ["account_manager", "name", "external_id"])
    op.create_index("ix_tenants_seats", "tenants", ["seats"])
    op.drop_index("ix_current_state_track_manager", table_name="current_state")
    op.create_index(
        "ix_current_state_track_manager_stage", "current_state", ["track_code", "account_manager", "stage_code"]
    )
    op.drop_index("ix_tenant_features_feature", table_name="tenant_features")
    op.create_index("ix_tenant_features_feature_tenant", "tenant_features", ["feature", "tenant_id"])


def downgrade() -> None:
    """Revert this revision."""
    op.drop_index("ix_tenant_features_feature_tenant", table_name="tenant_features")
    op.create_index("ix_tenant_features_feature", "tenant_features", ["feature"])
    op.drop_index("ix_current_state_track_manager_stage", table_name="current_state")
    op.create_index("ix_current_state_track_manager", "current_state", ["track_code", "account_manager"])
    op.drop_index("ix_tenants_seats", table_name="tenants")
    op.drop_index("ix_tenants_manager_name", table_name="tenants")
    op.drop_index("ix_tenants_name_external_id", table_name="tenants")
    op.create_index("ix_tenants_account_manager", "tenants", ["account_manager"])
    op.create_index("ix_tenants_name", "tenants", ["name"])
    op.create_index("ix_rollout_events_track_occurred", "rollout_events", ["track_code", "occurred_at"])
    _stage_counts(with_manager=False)
