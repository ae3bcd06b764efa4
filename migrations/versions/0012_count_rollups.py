"""stage_totals and manager_counts: the live counts rolled up without the manager, and per manager

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02 07:10:00

stage_counts is kept per (track, stage, tier, region, account manager) so that a manager's
numbers are their own. With a real book of business (tens of thousands of managers, a few
with tens of thousands of tenants, most with a handful) it holds some 300,000 rows at a
million tenants, and every view without a manager (admin, security lead, executive) summed
all of them: 150-700 ms per read. Two rollups are kept in the same transaction as
stage_counts (lockstep.services.counts):

- stage_totals (track, stage, tier, region): a few hundred rows; what every view without a
  manager reads. It mixes every manager's tenants, so on PostgreSQL its policy lets only
  the roles that see every tenant read it: an account manager's reads go to stage_counts.
- manager_counts (account manager, track, stage): the manager list of the filters and
  "not yet enabled by manager" read it in the manager's key order; row-scoped like
  stage_counts on PostgreSQL.

An index on stage_counts (account_manager, track_code) lets a manager's reads find their
few rows instead of scanning the track's. All filled here from stage_counts.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | Sequence[str] | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
# What the downgrade destroys (lockstep.migrate.downgrade_losses; `db downgrade` asks before it).
DOWNGRADE_DROPS_DATA: str | None = (
    None  # stage_totals and manager_counts, derived from stage_counts (refilled on upgrade)
)

APP_ROLE = "lockstep_app"
POLICY = "lockstep_actor_scope"
# As migration 0006's rule for tables whose rows carry the manager.
_ROLE = "current_setting('lockstep.actor_role', true)"
_EMAIL = "current_setting('lockstep.actor_email', true)"
_SEES_ALL = f"{_ROLE} IN ('admin', 'security_lead', 'executive')"
_RULE = f"{_SEES_ALL} OR ({_ROLE} = 'account_manager' AND account_manager = {_EMAIL})"


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "stage_totals",
        sa.Column("track_code", sa.String(length=32), nullable=False),
        sa.Column("stage_code", sa.String(length=32), nullable=False),
        sa.Column("tier", sa.String(length=32), nullable=False),
        sa.Column("region", sa.String(length=32), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("track_code", "stage_code", "tier", "region", name="pk_stage_totals"),
    )
    op.create_table(
        "manager_counts",
        sa.Column("account_manager", sa.String(length=254), nullable=False),
        sa.Column("track_code", sa.String(length=32), nullable=False),
        sa.Column("stage_code", sa.String(length=32), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("account_manager", "track_code", "stage_code", name="pk_manager_counts"),
    )
    op.create_index("ix_stage_counts_manager_track", "stage_counts", ["account_manager", "track_code"])
    op.execute(
        "INSERT INTO stage_totals (track_code, stage_code, tier, region, n) "
        "SELECT track_code, stage_code, tier, region, sum(n) FROM stage_counts "
        "GROUP BY track_code, stage_code, tier, region"
    )
    op.execute(
        "INSERT INTO manager_counts (account_manager, track_code, stage_code, n) "
        "SELECT account_manager, track_code, stage_code, sum(n) FROM stage_counts "
        "GROUP BY account_manager, track_code, stage_code"
    )
    # Statistics for the new tables and index, so neither planner guesses (SQLite has none
    # for them until ANALYZE; PostgreSQL's autovacuum would get to them later).
    op.execute("ANALYZE stage_counts")
    op.execute("ANALYZE stage_totals")
    op.execute("ANALYZE manager_counts")
    if op.get_bind().dialect.name == "postgresql":
        # manager_counts as stage_counts; stage_totals mixes every manager's tenants, so under
        # the policies only the roles that see every tenant read it (an account manager: nothing).
        for table, rule in (("manager_counts", _RULE), ("stage_totals", _SEES_ALL)):
            op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
            op.execute(
                f"CREATE POLICY {POLICY} ON {table} FOR ALL TO {APP_ROLE} USING ({rule}) WITH CHECK ({rule})"
            )


def downgrade() -> None:
    """Revert this revision."""
    # Dropping the tables drops their policies too.
    op.drop_index("ix_stage_counts_manager_track", table_name="stage_counts")
    op.drop_table("manager_counts")
    op.drop_table("stage_totals")
