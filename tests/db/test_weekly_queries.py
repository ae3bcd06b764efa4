"""Weekly queries on both backends: closed-week numbers equal a replay of the events."""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime, timedelta

import pytest
from sqlalchemy import select

from lockstep.db import read_session, write_session
from lockstep.models import CurrentState, PlanItem, Tenant, Workstream
from lockstep.permissions import SYSTEM, Actor
from lockstep.queries import weekly
from lockstep.services.rollout import record_event
from lockstep.services.snapshots import backfill_weeks, close_week
from tests.db.test_snapshots import TIERS, build_dataset, replayed_counts

THROUGH = date(2020, 6, 7)  # closes 2020-W14..W23
WEEKS = [date(2020, 3, 30) + timedelta(days=7 * i) for i in range(10)]
PAID = {t for t, paid in TIERS if paid}
EXEC = Actor("exec@lockstep.example", "executive")


@pytest.fixture
def closed(engine):
    """The small dataset with 2020-W14..W23 closed."""
    build_dataset(engine, tenants=60, seed=9)
    with write_session(engine) as s:
        backfill_weeks(session=s, actor=SYSTEM, through=THROUGH)
    return engine


def q(engine, fn, **kwargs):
    with read_session(engine) as s:
        return fn(session=s, **kwargs)


def test_closed_weeks_are_labelled_and_not_restated(closed):
    frame = q(closed, weekly.closed_weeks)
    assert list(frame["week_start"]) == WEEKS
    assert list(frame["week_label"]) == [f"2020-W{w}" for w in range(14, 24)]
    assert not frame["restated"].any()
    assert set(frame["closed_by"]) == {SYSTEM.email}


def test_stage_mix_equals_replayed_counts_per_stage(closed):
    frame = q(closed, weekly.stage_mix_by_week, track="encryption")
    for monday in (WEEKS[0], WEEKS[4], WEEKS[-1]):
        expected = Counter()
        for (track, stage, _tier, _region), n in replayed_counts(closed, monday).items():
            if track == "encryption":
                expected[stage] += n
        week = frame[frame["week_start"] == monday]
        assert dict(zip(week["stage_code"], week["n_current"], strict=True)) == dict(expected)
        assert (week["n_reported"] == week["n_current"]).all()
        # Ordered stages first, in track order; side stages after them.
        ordered = [s for s in week["stage_code"] if s not in ("blocked", "rolled_back")]
        track_order = ["legacy_cipher", "clients_upgraded", "gcm_enabled", "gcm_enforced"]
        assert ordered == [s for s in track_order if s in ordered]
        assert list(week["position"]) == sorted(week["position"])


def test_stage_mix_filters_tiers_and_stops_at_the_chosen_week(closed):
    frame = q(closed, weekly.stage_mix_by_week, track="encryption", tiers=["free"], as_of_week=WEEKS[3])
    assert sorted(set(frame["week_start"])) == WEEKS[:4]
    expected = sum(n for (t, _s, tier, _r), n in replayed_counts(closed, WEEKS[3]).items()
                   if t == "encryption" and tier == "free")
    assert frame[frame["week_start"] == WEEKS[3]]["n_current"].sum() == expected == 15


def test_e2ee_adoption_is_the_share_of_paid_tenants_enabled(closed):
    frame = q(closed, weekly.e2ee_adoption_by_week)
    assert list(frame["week_start"]) == WEEKS
    for monday in (WEEKS[2], WEEKS[-1]):
        counts = replayed_counts(closed, monday)
        paid = sum(n for (t, _s, tier, _r), n in counts.items() if t == "e2ee" and tier in PAID)
        enabled = sum(n for (t, s, tier, _r), n in counts.items() if t == "e2ee" and s == "enabled")
        row = frame[frame["week_start"] == monday].iloc[0]
        assert (row["paid_current"], row["enabled_current"]) == (paid, enabled) == (
            row["paid_reported"], row["enabled_reported"])
        assert row["pct_current"] == pytest.approx(100 * enabled / paid)
    assert frame["pct_current"].iloc[-1] > 0


def test_a_back_dated_event_shows_as_restated(closed):
    with read_session(closed) as s:
        ext = s.scalars(
            select(Tenant.external_id).join(CurrentState, CurrentState.tenant_id == Tenant.id)
            .where(CurrentState.track_code == "encryption", CurrentState.last_event_id.is_(None))
            .order_by(Tenant.id)
        ).first()
    before = q(closed, weekly.stage_mix_by_week, track="encryption")
    with write_session(closed) as s:
        record_event(session=s, actor=SYSTEM, tenant_external_id=ext, track="encryption",
                     stage="clients_upgraded", occurred_at=datetime(2020, 5, 20, 9), source="test")
    weeks = q(closed, weekly.closed_weeks)
    # Closed weeks ending after 2020-05-20 09:00 (W21..W23) are restated; earlier ones are not.
    assert list(weeks[weeks["restated"]]["week_label"]) == ["2020-W21", "2020-W22", "2020-W23"]
    after = q(closed, weekly.stage_mix_by_week, track="encryption")
    assert list(after["n_reported"]) == list(before["n_reported"])
    w21 = after[after["week_label"] == "2020-W21"].set_index("stage_code")
    assert w21.loc["legacy_cipher", "n_current"] == w21.loc["legacy_cipher", "n_reported"] - 1
    assert w21.loc["clients_upgraded", "n_current"] == w21.loc["clients_upgraded", "n_reported"] + 1
    assert w21.loc["legacy_cipher", "restated"] and w21.loc["clients_upgraded", "restated"]
    restated = q(closed, weekly.restated_numbers, as_of_week=WEEKS[7])
    assert list(restated["week_label"]) == ["2020-W21", "2020-W21"]
    assert sorted(restated["change"]) == [-1, 1]


def test_encryption_forecast_uses_gcm_enforced_per_closed_week(closed):
    f = q(closed, weekly.encryption_forecast, as_of_week=WEEKS[6])
    assert f.deadline == date(2020, 5, 30)
    assert [p.week_start for p in f.history] == WEEKS[:7]
    for p in f.history:
        counts = replayed_counts(closed, p.week_start)
        enforced = [n for (t, s, *_), n in counts.items() if t == "encryption" and s == "gcm_enforced"]
        assert p.done == sum(enforced)
        assert p.total == 60
    assert f.pace == pytest.approx((f.history[-1].done - f.history[-4].done) / 3)


def add_plan(engine) -> None:
    now = datetime(2020, 3, 1)
    items = [
        # id, due, done, status
        ("A1", date(2020, 4, 10), date(2020, 4, 9), "done"),
        ("A2", date(2020, 4, 20), date(2020, 5, 2), "done"),   # done late
        ("A3", date(2020, 5, 1), None, "in_progress"),          # overdue from 2020-05-01
        ("A4", date(2020, 6, 30), None, "not_started"),
        ("A5", None, None, "not_started"),
        ("A6", date(2020, 4, 1), None, "blocked"),              # retired: never counts
    ]
    with write_session(engine) as s:
        s.add(Workstream(code="ws", program_id="p", name="Crypto", lead="CTO"))
        s.flush()
        for item_id, due, done, status in items:
            s.add(PlanItem(id=item_id, program_id="p", workstream_code="ws", title=f"Item {item_id}",
                           owner="CTO",
                           due_date=due, done_date=done, status=status, percent=100 if done else 10,
                           created_at=now, updated_at=now,
                           retired_at=now if item_id == "A6" else None))


def test_plan_burnup_counts_due_and_done_by_each_week_end(closed):
    add_plan(closed)
    frame = q(closed, weekly.plan_burnup, as_of_week=WEEKS[5], today=date(2020, 6, 30))
    assert list(frame["week_label"]) == [f"2020-W{w}" for w in range(14, 20)]
    # W15 ends 04-12: A1 due+done. W17 ends 04-26: A2 due. W18 ends 05-03: A3 due, A2 done.
    assert list(frame["planned"]) == [0, 1, 1, 2, 3, 3]
    assert list(frame["done"]) == [0, 1, 1, 1, 2, 2]


def test_overdue_items_and_stuck_tenants(closed):
    add_plan(closed)
    overdue = q(closed, weekly.overdue_plan_items, as_of=date(2020, 5, 1))
    assert list(overdue["id"]) == ["A2"]  # A3 is due that day, not before it; A2 is done 05-02
    overdue = q(closed, weekly.overdue_plan_items, as_of=date(2020, 6, 1))
    assert list(overdue["id"]) == ["A3"]
    assert list(overdue["days_overdue"]) == [31]

    with read_session(closed) as s:
        rows = s.execute(
            select(CurrentState.tier, CurrentState.stage_code, Tenant.seats, Tenant.external_id,
                   CurrentState.account_manager)
            .join(Tenant, Tenant.id == CurrentState.tenant_id)
            .where(CurrentState.track_code == "encryption")
        ).all()
    for as_of, late in ((date(2020, 5, 1), False), (date(2020, 6, 1), True)):
        stuck = [r for r in rows if r.stage_code in ("blocked", "rolled_back")
                 or (late and r.stage_code == "legacy_cipher")]
        by_tier = q(closed, weekly.stuck_tenants_by_tier, actor=EXEC, as_of=as_of)
        totals = dict(zip(by_tier["tier"], by_tier["total"], strict=True))
        assert totals == dict(Counter(r.tier for r in stuck))
        assert by_tier["not_started_late"].sum() == sum(r.stage_code == "legacy_cipher" for r in stuck)
        largest = q(closed, weekly.largest_stuck_tenants, actor=EXEC, as_of=as_of)
        expected = sorted(stuck, key=lambda r: (-r.seats, r.external_id))[:10]
        assert list(largest["external_id"]) == [r.external_id for r in expected]
    assert by_tier["not_started_late"].sum() > 0

    manager = Actor("am1@x.example", "account_manager")
    mine = q(closed, weekly.largest_stuck_tenants, actor=manager, as_of=date(2020, 6, 1), limit=100)
    assert len(mine) > 0 and set(mine["account_manager"]) == {"am1@x.example"}
    risks = q(closed, weekly.top_risks, actor=manager, as_of=date(2020, 6, 1))
    assert risks.stuck_by_tier["total"].sum() == len(mine)


def test_no_closed_weeks_gives_empty_frames(engine):
    build_dataset(engine, tenants=4)
    assert q(engine, weekly.closed_weeks).empty
    assert q(engine, weekly.stage_mix_by_week, track="encryption").empty
    assert q(engine, weekly.e2ee_adoption_by_week).empty
    assert q(engine, weekly.plan_burnup).empty
    assert q(engine, weekly.encryption_forecast, as_of_week=WEEKS[0]).status == "unknown"
    with write_session(engine) as s:
        close_week(session=s, actor=SYSTEM, week_start=WEEKS[0])
    assert len(q(engine, weekly.closed_weeks)) == 1
