"""Migration 0011 (programs): a database at 0010 with a synced, edited plan and closed weeks
upgrades with nothing lost and every row given the one program; the downgrade gives it back."""

from __future__ import annotations

from datetime import date, datetime

import pytest
from sqlalchemy import text

from lockstep.db import make_engine
from lockstep.migrate import downgrade, head_revision, upgrade
from tests.conftest import new_pg_database

T = datetime(2020, 5, 4)
TABLES = (
    "program",
    "tracks",
    "track_stages",
    "workstreams",
    "plan_items",
    "plan_item_updates",
    "snapshot_weeks",
    "weekly_snapshots",
    "deliveries",
)


@pytest.fixture
def url_at_0010(backend, request, tmp_path) -> str:
    """An empty database migrated to 0010 on the test's backend."""
    url = f"sqlite:///{tmp_path / 'old.db'}" if backend == "sqlite" else new_pg_database(request)
    upgrade(url, "0010")
    return url


def _fill_at_0010(conn) -> None:
    """What a 0010 database holds after plan sync, an edit, two closed weeks and a delivery."""
    x = conn.execute
    x(
        text(
            "INSERT INTO program (id, name, start_date, end_date, synced_at) "
            "VALUES ('zoom-2020', 'Plan', :s, :e, :t)"
        ),
        {"s": date(2020, 4, 1), "e": date(2020, 6, 30), "t": T},
    )
    x(text("INSERT INTO tiers (code, name, paid, position) VALUES ('free', 'Free', false, 0)"))
    x(
        text(
            "INSERT INTO tracks (code, name, description, deadline, tiers, ready_stage, blocking_features, "
            "position) VALUES ('encryption', 'Enc', '', :d, '[\"free\"]', 'b', '[]', 0)"
        ),
        {"d": date(2020, 5, 30)},
    )
    for pos, stage in enumerate(("a", "b")):
        x(
            text(
                "INSERT INTO track_stages (track_code, code, name, position, is_side, description) "
                "VALUES ('encryption', :c, :c, :p, false, '')"
            ),
            {"c": stage, "p": pos},
        )
    x(text("INSERT INTO workstreams (code, name, lead) VALUES ('crypto', 'Cryptography', 'CTO')"))
    for item, status, version in (("Z01", "done", 2), ("Z02", "not_started", 1)):
        x(
            text(
                "INSERT INTO plan_items (id, workstream_code, title, owner, depends_on, source, uncertain, "
                "status, percent, comment, version, created_at, updated_at, updated_by) "
                "VALUES (:i, 'crypto', :i, 'CTO', '[]', 'src', false, :s, 0, 'edited', :v, :t, :t, 'lead')"
            ),
            {"i": item, "s": status, "v": version, "t": T},
        )
    x(
        text(
            "INSERT INTO plan_item_updates (item_id, version, changed_at, changed_by, changes) "
            "VALUES ('Z01', 2, :t, 'lead', '{\"status\": [\"not_started\", \"done\"]}')"
        ),
        {"t": T},
    )
    for monday, n in ((date(2020, 4, 27), 7), (date(2020, 5, 4), 9)):
        x(
            text("INSERT INTO snapshot_weeks (week_start, closed_at, closed_by) VALUES (:w, :t, 'lead')"),
            {"w": monday, "t": T},
        )
        x(
            text(
                "INSERT INTO weekly_snapshots (week_start, track_code, stage_code, tier, region, n_reported, "
                "n_current) VALUES (:w, 'encryption', 'a', 'free', 'us', :n, :c)"
            ),
            {"w": monday, "n": n, "c": n + 1},
        )
    x(
        text(
            "INSERT INTO deliveries (kind, period, recipients, subject, sent_at, sent_by) "
            "VALUES ('weekly', '2020-W19', '[\"ceo@x.example\"]', 'Weekly', :t, 'system')"
        ),
        {"t": T},
    )


def _rows(conn) -> dict[str, list[tuple]]:
    """Every row of the tables 0011 touches, without program_id, sorted."""
    out = {}
    for table in TABLES:
        result = conn.execute(text(f"SELECT * FROM {table}"))  # noqa: S608 - our table names
        keys = [k for k in result.keys() if k != "program_id"]  # noqa: SIM118 - a result, not a dict
        out[table] = sorted(tuple(str(row._mapping[k]) for k in keys) for row in result)
    return out


def test_upgrade_keeps_every_row_and_gives_it_the_program_then_downgrade_gives_it_back(url_at_0010):
    engine = make_engine(url_at_0010)
    try:
        with engine.begin() as conn:
            _fill_at_0010(conn)
        with engine.connect() as conn:
            before = _rows(conn)
        assert all(before[t] for t in TABLES)
        upgrade(url_at_0010)
        with engine.connect() as conn:
            assert _rows(conn) == before
            for table in TABLES[1:]:
                if table in ("track_stages", "plan_item_updates"):
                    continue  # they follow their track and item
                owners = conn.execute(text(f"SELECT DISTINCT program_id FROM {table}")).scalars().all()  # noqa: S608
                assert owners == ["zoom-2020"], table
        # A second program's week may now share a Monday with the first's.
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO program (id, name, start_date, end_date, synced_at) "
                    "VALUES ('next', 'Next', :s, :e, :t)"
                ),
                {"s": date(2020, 5, 1), "e": date(2020, 8, 1), "t": T},
            )
            conn.execute(
                text(
                    "INSERT INTO snapshot_weeks (program_id, week_start, closed_at, closed_by) "
                    "VALUES ('next', :w, :t, 'lead')"
                ),
                {"w": date(2020, 5, 4), "t": T},
            )
        with pytest.raises(Exception, match="holds 2 programs"):
            downgrade(url_at_0010, "0010")
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM snapshot_weeks WHERE program_id = 'next'"))
            conn.execute(text("DELETE FROM program WHERE id = 'next'"))
        downgrade(url_at_0010, "0010")
        with engine.connect() as conn:
            assert _rows(conn) == before
        upgrade(url_at_0010)
        with engine.connect() as conn:
            assert _rows(conn) == before
    finally:
        engine.dispose()


def test_an_empty_database_upgrades_and_rows_without_a_program_are_refused(url_at_0010):
    engine = make_engine(url_at_0010)
    try:
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO workstreams (code, name, lead) VALUES ('orphan', 'Orphan', '')"))
        with pytest.raises(Exception, match="cannot give the 1 rows of workstreams a program"):
            upgrade(url_at_0010)
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM workstreams"))
        upgrade(url_at_0010)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == head_revision()
    finally:
        engine.dispose()
