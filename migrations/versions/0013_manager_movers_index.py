"""current_state (track, manager, since, stage) index also holds the stage reached and the tier

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02 07:45:00

An account manager's Overview estimates "a week ago" from the tenants whose state changed
within the week (lockstep.queries.overview._movers_between: stage and stage reached, per
manager, `since` in the last seven days). The index had the stage but not the stage reached,
so each such tenant cost a table lookup: for a manager with 100,000 tenants, most of them
confirmed within the week, ~85,000 lookups (0.1-0.7 s). With the stage reached and the tier
(the paid-only E2EE mix filters on it) in the index the count is read from the index alone. Same name, one more trailing column: every query
the old index served it serves.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0013"
down_revision: str | Sequence[str] | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
# What the downgrade destroys (lockstep.migrate.downgrade_losses; `db downgrade` asks before it).
DOWNGRADE_DROPS_DATA: str | None = None  # an index only

NAME = "ix_current_state_track_manager_since"
BEFORE = ["track_code", "account_manager", "since", "stage_code"]


def upgrade() -> None:
    """Apply this revision."""
    op.drop_index(NAME, table_name="current_state")
    op.create_index(NAME, "current_state", [*BEFORE, "reached_stage_code", "tier"])
    _analyze()


def _analyze() -> None:
    # SQLite keeps no statistics for a new index until ANALYZE: it then takes "track_code = ?"
    # on it for a few rows and drives the admin's tenant page from all of a track's states
    # (0.05 s -> 2 s at 100,000 tenants). Full statistics, as the importer leaves them.
    if op.get_bind().dialect.name == "sqlite":
        op.execute("PRAGMA analysis_limit = 0")
        op.execute(f"ANALYZE {NAME}")


def downgrade() -> None:
    """Revert this revision."""
    op.drop_index(NAME, table_name="current_state")
    op.create_index(NAME, "current_state", BEFORE)
    _analyze()
