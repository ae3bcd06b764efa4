"""programs side by side: plan items, workstreams, tracks and closed weeks belong to a program

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03 10:00:00

- tracks, workstreams, plan_items: a `program_id` (NOT NULL, foreign key to program.id,
  indexed). Codes and item ids stay globally unique: rollout events and imports name a
  track by its code, and `plan sync` refuses an id another program owns.
- snapshot_weeks: keyed by (program_id, week_start), so each program closes its own weeks.
- weekly_snapshots: a `program_id`, in its primary key (program_id, week_start, track,
  stage, tier, region) and in the foreign key to its closed week, (program_id, week_start).
- deliveries: a nullable `program_id` (foreign key), so each program's weekly report and
  overdue lists are sent once per week; earlier deliveries get the existing program.

Until now a database held at most one program (`plan sync` refused a second), so the
upgrade gives every existing row that program. A database with rows but no program row
cannot be upgraded (there is nothing to give them) and the upgrade says so; a database
with no plan at all upgrades as it is.

The downgrade takes the columns off again and loses nothing while one program is stored;
with two or more it refuses (0010 cannot tell their items or weeks apart), naming them.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
# Nothing: the downgrade runs only while one program is stored, so program_id is implied.
DOWNGRADE_DROPS_DATA: str | None = None

OWNED = ("tracks", "workstreams", "plan_items")
WEEKLY_KEY = ("week_start", "track_code", "stage_code", "tier", "region")
_OLD_WEEK_FK = "fk_weekly_snapshots_week_start_snapshot_weeks"
_WEEK_FK = "fk_weekly_snapshots_week"


def _sqlite_foreign_keys_off() -> None:
    # SQLite rebuilds a table to change its constraints; with foreign keys on, dropping the
    # old copy of a table others refer to (tracks, plan_items, workstreams, snapshot_weeks)
    # fails. The pragma is ignored inside a transaction, so end the one that brought the
    # database to 0010 (consistent: alembic_version says 0010), switch the checks off and
    # run this revision in a transaction of its own; foreign_key_check proves the result.
    # The pragma stays off on this migration connection, which env.py disposes afterwards.
    op.execute("COMMIT")
    op.execute("PRAGMA foreign_keys=OFF")
    op.execute("BEGIN IMMEDIATE")


def _check_sqlite_foreign_keys(bind) -> None:
    problems = bind.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
    if problems:
        raise RuntimeError(f"migration 0011 left rows whose foreign keys do not match: {problems[:5]}")


def _the_program(bind) -> str | None:
    """The program every existing row belongs to; None when there is no plan at all."""
    program = bind.execute(sa.text("SELECT id FROM program ORDER BY start_date, id")).scalars().first()
    if program is None:
        for table in (*OWNED, "snapshot_weeks"):
            n = bind.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one()  # noqa: S608 - our names
            if n:
                raise RuntimeError(
                    f"migration 0011 cannot give the {n} rows of {table} a program: the program table "
                    "is empty. Sync the plan at revision 0010 first (`python -m lockstep plan sync FILE`)"
                )
    return program


def _owned_by_program(table: str, program: str | None, *, nullable: bool = False) -> None:
    op.add_column(table, sa.Column("program_id", sa.String(length=64), nullable=True))
    if program is not None:
        op.execute(sa.text(f"UPDATE {table} SET program_id = :p").bindparams(p=program))  # noqa: S608
    with op.batch_alter_table(table) as batch:
        batch.alter_column("program_id", existing_type=sa.String(length=64), nullable=nullable)


def upgrade() -> None:
    """Apply this revision."""
    bind = op.get_bind()
    sqlite = bind.dialect.name == "sqlite"
    if sqlite:
        _sqlite_foreign_keys_off()
    program = _the_program(bind)
    for table in OWNED:
        _owned_by_program(table, program)
        with op.batch_alter_table(table) as batch:
            batch.create_foreign_key(f"fk_{table}_program_id_program", "program", ["program_id"], ["id"])
            batch.create_index(f"ix_{table}_program_id", ["program_id"])

    with op.batch_alter_table("weekly_snapshots") as batch:
        batch.drop_constraint(_OLD_WEEK_FK, type_="foreignkey")
    _owned_by_program("snapshot_weeks", program)
    with op.batch_alter_table("snapshot_weeks") as batch:
        batch.drop_constraint("pk_snapshot_weeks", type_="primary")
        batch.create_primary_key("pk_snapshot_weeks", ["program_id", "week_start"])
        batch.create_foreign_key("fk_snapshot_weeks_program_id_program", "program", ["program_id"], ["id"])
    _owned_by_program("weekly_snapshots", program)
    with op.batch_alter_table("weekly_snapshots") as batch:
        batch.drop_constraint("pk_weekly_snapshots", type_="primary")
        batch.create_primary_key("pk_weekly_snapshots", ["program_id", *WEEKLY_KEY])
        batch.create_foreign_key(
            _WEEK_FK, "snapshot_weeks", ["program_id", "week_start"], ["program_id", "week_start"]
        )
    _owned_by_program("deliveries", program, nullable=True)
    with op.batch_alter_table("deliveries") as batch:
        batch.create_foreign_key("fk_deliveries_program_id_program", "program", ["program_id"], ["id"])
    if sqlite:
        _check_sqlite_foreign_keys(bind)


def downgrade() -> None:
    """Revert this revision (refused while two or more programs are stored)."""
    bind = op.get_bind()
    programs = bind.execute(sa.text("SELECT id FROM program ORDER BY start_date, id")).scalars().all()
    if len(programs) > 1:
        raise RuntimeError(
            f"cannot downgrade below 0011: the database holds {len(programs)} programs "
            f"({', '.join(programs)}) and revision 0010 holds one; their plan items and closed weeks "
            "would run together. Restore a backup taken before the second program was synced"
        )
    sqlite = bind.dialect.name == "sqlite"
    if sqlite:
        _sqlite_foreign_keys_off()
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_constraint("fk_deliveries_program_id_program", type_="foreignkey")
        batch.drop_column("program_id")
    with op.batch_alter_table("weekly_snapshots") as batch:
        batch.drop_constraint(_WEEK_FK, type_="foreignkey")
        batch.drop_constraint("pk_weekly_snapshots", type_="primary")
        batch.create_primary_key("pk_weekly_snapshots", list(WEEKLY_KEY))
    with op.batch_alter_table("weekly_snapshots") as batch:
        batch.drop_column("program_id")
    with op.batch_alter_table("snapshot_weeks") as batch:
        batch.drop_constraint("fk_snapshot_weeks_program_id_program", type_="foreignkey")
        batch.drop_constraint("pk_snapshot_weeks", type_="primary")
        batch.create_primary_key("pk_snapshot_weeks", ["week_start"])
    with op.batch_alter_table("snapshot_weeks") as batch:
        batch.drop_column("program_id")
    with op.batch_alter_table("weekly_snapshots") as batch:
        batch.create_foreign_key(_OLD_WEEK_FK, "snapshot_weeks", ["week_start"], ["week_start"])
    for table in OWNED:
        with op.batch_alter_table(table) as batch:
            batch.drop_index(f"ix_{table}_program_id")
            batch.drop_constraint(f"fk_{table}_program_id_program", type_="foreignkey")
            batch.drop_column("program_id")
    if sqlite:
        _check_sqlite_foreign_keys(bind)
