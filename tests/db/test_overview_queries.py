"""Overview rollout numbers: now, a week ago (snapshot or approximated from `since`), scoping."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from lockstep.db import read_session, write_session
from lockstep.permissions import SYSTEM, Actor
from lockstep.queries.overview import assumed_origin, final_stage, track_stage_mix
from lockstep.services.rollout import record_event
from lockstep.services.snapshots import close_week
from tests.db.test_snapshots import add_tenants, build_program

TODAY = date(2020, 5, 15)  # a week ago: 2020-05-08; the newest week ended by then is 2020-W18
LEAD = Actor("lead@lockstep.example", "security_lead")
AM0 = Actor("am0@x.example", "account_manager")
ORDERED = ["legacy_cipher", "clients_upgraded", "gcm_enabled", "gcm_enforced"]


@pytest.fixture
def rollout_engine(engine):
    """12 tenants (tiers free, pro, business, enterprise in turn; managers am0..am2 in turn)."""
    with write_session(engine) as s:
        build_program(s)
        add_tenants(s, 12, seed=4)
    events = [
        ("T0000", "clients_upgraded", datetime(2020, 4, 10)),
        ("T0000", "gcm_enabled", datetime(2020, 5, 10, 12)),  # this week
        ("T0001", "clients_upgraded", datetime(2020, 5, 12)),  # this week
        ("T0002", "gcm_enabled", datetime(2020, 4, 20)),
        ("T0002", "blocked", datetime(2020, 5, 11, 9)),  # this week
        ("T0003", "gcm_enforced", datetime(2020, 4, 20)),
    ]
    for ext, stage, at in events:
        with write_session(engine) as s:
            record_event(
                session=s,
                actor=SYSTEM,
                tenant_external_id=ext,
                track="encryption",
                stage=stage,
                occurred_at=at,
            )
    return engine


def _mix(engine, actor=LEAD, **kw):
    with read_session(engine) as s:
        mix = track_stage_mix(session=s, actor=actor, track="encryption", today=TODAY, **kw)
    return mix, mix.counts.set_index("stage")


def test_now_and_a_week_ago_from_since(rollout_engine):
    mix, c = _mix(rollout_engine)
    assert mix.approximate and "approximate" in mix.basis
    assert c.loc[ORDERED + ["blocked", "rolled_back"], "n"].tolist() == [8, 1, 1, 1, 1, 0]
    # Each mover came from the stage before (blocked: from the stage it had reached), which is the truth here.
    assert c.loc[ORDERED + ["blocked", "rolled_back"], "n_week_ago"].tolist() == [9, 1, 1, 1, 0, 0]
    assert (mix.ready(), mix.ready(week_ago=True)) == (2, 2)  # blocked is not ready
    assert c.index[c["ready"]].tolist() == ["gcm_enabled", "gcm_enforced"]
    assert mix.total == mix.total_week_ago == 12


def test_a_closed_week_is_used_only_when_it_ended_at_least_a_week_ago(rollout_engine):
    with write_session(rollout_engine) as s:
        close_week(session=s, actor=SYSTEM, week_start=date(2020, 5, 4))
    # W19 ended Monday 05-11, four days before the end of today: too young to stand for "a week ago".
    mix, _ = _mix(rollout_engine)
    assert mix.approximate and "W19" not in mix.basis
    with write_session(rollout_engine) as s:
        close_week(session=s, actor=SYSTEM, week_start=date(2020, 4, 27))
    mix, c = _mix(rollout_engine)
    assert not mix.approximate
    assert mix.basis == (
        "vs the closed snapshot of 2020-W18, as of the end of Sun May 3 (12 days before the end of today)"
    )
    # As of the end of Sunday 05-03: T0000 at clients upgraded, T0002 at GCM enabled, not blocked yet.
    assert c.loc[ORDERED + ["blocked"], "n_week_ago"].tolist() == [9, 1, 1, 1, 0]
    assert c.loc[ORDERED + ["blocked"], "n"].tolist() == [8, 1, 1, 1, 1]
    # On a Sunday, the week that ended a week before tonight is exactly a week old.
    with read_session(rollout_engine) as s:
        monday = track_stage_mix(session=s, actor=LEAD, track="encryption", today=date(2020, 5, 10))
    assert "2020-W18" in monday.basis and "(exactly a week before the end of today)" in monday.basis


def test_account_manager_counts_own_tenants_only(rollout_engine):
    with write_session(rollout_engine) as s:
        close_week(session=s, actor=SYSTEM, week_start=date(2020, 5, 4))
    mix, c = _mix(rollout_engine, actor=AM0)
    assert mix.total == 4  # T0000, T0003, T0006, T0009
    assert c.loc[ORDERED, "n"].tolist() == [2, 0, 1, 1]
    # Snapshots know no managers, so the week ago is approximated even with a closed week.
    assert mix.approximate
    assert c.loc[ORDERED, "n_week_ago"].tolist() == [2, 1, 0, 1]


def test_paid_only_leaves_out_free_tenants(rollout_engine):
    mix, c = _mix(rollout_engine, paid_only=True)
    assert mix.total == 9
    assert c.loc[ORDERED + ["blocked"], "n"].tolist() == [6, 1, 0, 1, 1]


def test_final_stage_is_the_last_ordered_one(rollout_engine):
    with read_session(rollout_engine) as s:
        assert final_stage(session=s, track="e2ee") == "enabled"
        assert final_stage(session=s, track="nope") is None


@pytest.mark.parametrize(
    ("stage", "reached", "origin"),
    [
        ("legacy_cipher", "legacy_cipher", None),  # a new tenant
        ("gcm_enabled", "gcm_enabled", "clients_upgraded"),
        ("blocked", "clients_upgraded", "clients_upgraded"),
        ("rolled_back", "gcm_enabled", "gcm_enforced"),
    ],
)
def test_assumed_origin(stage, reached, origin):
    assert assumed_origin(stage, reached, ORDERED) == origin
