"""E2EE queries on the hand-built world: adoption by tier, the blockers ranking, the manager drill-down."""

from __future__ import annotations

import pytest

from lockstep.db import read_session
from lockstep.queries import e2ee as q
from tests.db.rollout_world import ADMIN, AM_A, AM_B, MANAGER_A, pinned_world, sql

NOT_ENABLED = "cs.track_code='e2ee' AND cs.stage_code <> 'enabled'"


@pytest.fixture
def world(engine, monkeypatch):
    """The hand-built world on the test's backend."""
    yield from pinned_world(engine, monkeypatch)


def test_adoption_by_tier_matches_sql_and_is_scoped(world):
    with read_session(world) as s:
        everyone = q.adoption_by_tier(session=s, actor=ADMIN)
        mine = q.adoption_by_tier(session=s, actor=AM_A)
    expected = {
        (t, st): n
        for t, st, n in sql(
            world,
            "SELECT tier, stage_code, COUNT(*) FROM current_state "
            "WHERE track_code='e2ee' GROUP BY tier, stage_code",
        )
    }
    assert {(r.tier, r.stage): r.n for r in everyone.itertuples()} == expected
    assert list(dict.fromkeys(everyone["tier"])) == ["pro", "business"]  # display order, no free tier
    assert list(dict.fromkeys(everyone[everyone["tier"] == "pro"]["stage"])) == [
        "eligible",
        "pilot",
        "enabled",
        "blocked",
    ]
    expected_mine = {
        (t, st): n
        for t, st, n in sql(
            world,
            "SELECT tier, stage_code, COUNT(*) FROM current_state WHERE "
            "track_code='e2ee' AND account_manager=:m GROUP BY tier, stage_code",
            m=MANAGER_A,
        )
    }
    assert {(r.tier, r.stage): r.n for r in mine.itertuples()} == expected_mine
    assert int(mine["n"].sum()) < int(everyone["n"].sum())


def test_blockers_ranked_by_not_yet_enabled_tenants(world):
    with read_session(world) as s:
        ranking = q.blockers_ranking(session=s, actor=ADMIN)
        mine = q.blockers_ranking(session=s, actor=AM_A)
    query = (
        "SELECT tf.feature, COUNT(*) FROM tenant_features tf JOIN current_state cs ON cs.tenant_id="
        f"tf.tenant_id WHERE {NOT_ENABLED} AND tf.feature IN "
        "('cloud_recording','phone_dialin','web_client','join_before_host') {extra} GROUP BY tf.feature"
    )
    expected = dict(sql(world, query.format(extra="")))
    assert dict(zip(ranking["feature"], ranking["tenants"], strict=True)) == expected
    assert list(ranking["tenants"]) == sorted(ranking["tenants"], reverse=True)
    assert "breakout_rooms" not in set(ranking["feature"])  # used, but not a blocker
    assert ranking.iloc[0]["name"] == "Cloud recording"
    assert dict(zip(mine["feature"], mine["tenants"], strict=True)) == dict(
        sql(world, query.format(extra="AND cs.account_manager=:m"), m=MANAGER_A)
    )


def test_not_enabled_by_manager_and_drill_down(world):
    with read_session(world) as s:
        by_manager = q.not_enabled_by_manager(session=s, actor=ADMIN)
        mine = q.not_enabled_by_manager(session=s, actor=AM_A)
        drill = q.not_enabled_tenants(session=s, actor=ADMIN, manager=MANAGER_A)
        not_mine = q.not_enabled_tenants(session=s, actor=AM_B, manager=MANAGER_A)
    expected = dict(
        sql(
            world,
            f"SELECT cs.account_manager, COUNT(*) FROM current_state cs WHERE {NOT_ENABLED} "
            "GROUP BY cs.account_manager",
        )
    )
    assert dict(zip(by_manager["account_manager"], by_manager["tenants"], strict=True)) == expected
    assert list(mine["account_manager"]) == [MANAGER_A]
    ids = [
        r[0]
        for r in sql(
            world,
            "SELECT t.external_id FROM tenants t JOIN current_state cs ON "
            f"cs.tenant_id=t.id WHERE {NOT_ENABLED} AND cs.account_manager=:m "
            "ORDER BY t.name, t.external_id",
            m=MANAGER_A,
        )
    ]
    assert list(drill["external_id"]) == ids and len(ids) == expected[MANAGER_A]
    assert not_mine.empty
    # T020 (business, manager a, eligible): cloud recording, phone dial-in and breakout rooms.
    row = drill[drill["external_id"] == "T020"].iloc[0]
    assert row["blockers"] == "Cloud recording; Phone dial-in"


def test_the_full_download_holds_what_the_drill_down_pages_hold(world):
    # limit=None (the CSV "download all") reads from the manager's state rows, the pages walk
    # the manager's tenants by name: both must give the same rows in the same order.
    with read_session(world) as s:
        everything = q.not_enabled_tenants(session=s, actor=ADMIN, manager=MANAGER_A, limit=None)
        walked = q.not_enabled_tenants(session=s, actor=ADMIN, manager=MANAGER_A, limit=10_000)
        first = q.not_enabled_tenants(session=s, actor=ADMIN, manager=MANAGER_A, limit=3)
        not_mine = q.not_enabled_tenants(session=s, actor=AM_B, manager=MANAGER_A, limit=None)
    assert len(everything) > 3
    assert everything.equals(walked)
    assert first.equals(everything.head(3))
    assert not_mine.empty
