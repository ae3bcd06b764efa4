"""Closing weeks: frozen counts equal a replay of each tenant's events, on both backends."""

from __future__ import annotations

import random
from collections import Counter
from datetime import date, datetime, timedelta

import pytest
from sqlalchemy import func, select

from lockstep.clock import utcnow, week_end, week_start
from lockstep.db import read_session, write_session
from lockstep.errors import PermissionDenied, ValidationError
from lockstep.models import (
    AuditEntry,
    CurrentState,
    Program,
    RolloutEvent,
    SnapshotWeek,
    Tenant,
    Tier,
    Track,
    TrackStage,
    WeeklySnapshot,
)
from lockstep.permissions import SYSTEM, Actor
from lockstep.rollout_rules import BLOCKED, ROLLED_BACK, replay
from lockstep.services.rollout import load_track_rules, rebuild_stage_counts, record_event
from lockstep.services.snapshots import backfill_weeks, close_latest_week, close_week

W15 = date(2020, 4, 6)  # Monday of 2020-W15
TIERS = (("free", False), ("pro", True), ("business", True), ("enterprise", True))
REGIONS = ("us", "eu", "apac")
TRACKS = {
    "encryption": (("legacy_cipher", "clients_upgraded", "gcm_enabled", "gcm_enforced"), date(2020, 5, 30)),
    "e2ee": (("eligible", "pilot", "enabled"), None),
}
EXECUTIVE = Actor("exec@lockstep.example", "executive")


# --- a small deterministic program, built through the same services the app uses -------


def build_program(session) -> None:
    """Program 2020-04-01..06-30, four tiers, the two shipped tracks with side stages."""
    now = datetime(2020, 3, 1)
    session.add(Program(id="p", name="Test program", start_date=date(2020, 4, 1),
                        end_date=date(2020, 6, 30), synced_at=now))
    for pos, (code, paid) in enumerate(TIERS):
        session.add(Tier(code=code, name=code.title(), paid=paid, position=pos))
    for pos, (code, (stages, deadline)) in enumerate(TRACKS.items()):
        tiers = [t for t, paid in TIERS if paid or code == "encryption"]
        session.add(Track(code=code, program_id="p", name=code, deadline=deadline, tiers=tiers, position=pos,
                          ready_stage=stages[-2], blocking_features=[]))
        session.flush()
        for i, stage in enumerate(stages):
            session.add(TrackStage(track_code=code, code=stage, name=stage, position=i))
        for i, side in enumerate((BLOCKED, ROLLED_BACK)):
            session.add(TrackStage(track_code=code, code=side, name=side, position=100 + i, is_side=True))
    session.flush()


ADDED = datetime(2020, 4, 1)  # the program's start, as the demo dates its tenants
LOADED_LATE = datetime(2026, 1, 1)  # long after the 2020 events they carry, as an import of history


def add_tenants(session, n: int, seed: int, *, late_every: int = 0) -> None:
    """n tenants, each with a current_state row at the first stage of every track it is on.

    With `late_every` k, every k-th tenant is loaded late: it counts in a week only from its first event.
    """
    rnd = random.Random(seed)
    rules = load_track_rules(session)
    for i in range(n):
        created = LOADED_LATE if late_every and i % late_every == late_every - 1 else ADDED
        tier = TIERS[i % len(TIERS)][0]
        tenant = Tenant(external_id=f"T{i:04d}", name=f"Tenant {i}", tier=tier, region=rnd.choice(REGIONS),
                        seats=rnd.randint(5, 5000), account_manager=f"am{i % 3}@x.example",
                        client_version="4.6.0", created_at=created, updated_at=created)
        session.add(tenant)
        session.flush()
        for code, r in rules.items():
            if tier in r.tiers:
                session.add(CurrentState(tenant_id=tenant.id, track_code=code, stage_code=r.initial,
                                         reached_stage_code=r.initial, since=created, tier=tier,
                                         region=tenant.region, account_manager=tenant.account_manager))
    session.flush()
    rebuild_stage_counts(session)


def random_events(session, seed: int) -> list[tuple[str, str, str, datetime]]:
    """A legal random timeline per (tenant, track), with same-instant pairs and Monday-midnight events."""
    rnd = random.Random(seed)
    rules = load_track_rules(session)
    out = []
    rows = session.execute(
        select(Tenant.external_id, CurrentState.track_code)
        .join(Tenant, Tenant.id == CurrentState.tenant_id)
        .order_by(Tenant.id, CurrentState.track_code)
    ).all()
    for ext, track in rows:
        r = rules[track]
        at = datetime(2020, 3, 30) + timedelta(hours=rnd.randint(0, 24 * 20))
        reached = 0
        for _ in range(rnd.randint(0, 5)):
            roll = rnd.random()
            if roll < 0.1:
                stage = BLOCKED
            elif roll < 0.18 and reached > 0:
                stage, reached = ROLLED_BACK, reached - 1
            else:
                reached = rnd.randint(reached, len(r.stages) - 1)
                stage = r.stages[reached]
            step = rnd.choice((0, 0, 24, 24 * 3, 24 * 7, 24 * 10))
            at = at + timedelta(hours=step)
            if rnd.random() < 0.15:
                at = datetime.combine(week_start(at.date()), datetime.min.time())  # exactly Monday 00:00
            if out and out[-1][:2] == (ext, track) and at < out[-1][3]:
                at = out[-1][3]
            if any(e[:2] == (ext, track) and e[3] == at and e[2] == stage for e in out[-6:]):
                continue
            out.append((ext, track, stage, at))
    return out


def build_dataset(engine, *, tenants: int = 48, seed: int = 7, late_every: int = 0) -> None:
    """Program, tenants and a random legal event history, recorded through record_event."""
    with write_session(engine) as s:
        build_program(s)
        add_tenants(s, tenants, seed, late_every=late_every)
        events = random_events(s, seed)
    with write_session(engine) as s:
        for ext, track, stage, at in events:
            record_event(session=s, actor=SYSTEM, tenant_external_id=ext, track=track, stage=stage,
                         occurred_at=at, source="test")


def replayed_counts(engine, monday: date) -> Counter:
    """Independent recomputation: replay each tenant's events before the week's end in Python."""
    end = week_end(monday)
    counts: Counter = Counter()
    with read_session(engine) as s:
        rules = load_track_rules(s)
        for tenant_id, track, tier, region, created in s.execute(
            select(CurrentState.tenant_id, CurrentState.track_code, CurrentState.tier, CurrentState.region,
                   Tenant.created_at).join(Tenant, Tenant.id == CurrentState.tenant_id)
        ):
            events = s.execute(
                select(RolloutEvent.occurred_at, RolloutEvent.stage_code)
                .where(RolloutEvent.tenant_id == tenant_id, RolloutEvent.track_code == track,
                       RolloutEvent.occurred_at < end)
                .order_by(RolloutEvent.occurred_at, RolloutEvent.id)
            ).all()
            if not events and created >= end:
                continue  # not there yet: added after the week, no event before its end
            state = replay(rules[track], [(a, st) for a, st in events])
            counts[(track, state.stage, tier, region)] += 1
    return counts


def snapshot_counts(engine, monday: date, column: str = "n_reported") -> Counter:
    """What weekly_snapshots holds for a week (zero rows dropped)."""
    with read_session(engine) as s:
        rows = s.execute(
            select(WeeklySnapshot.track_code, WeeklySnapshot.stage_code, WeeklySnapshot.tier,
                   WeeklySnapshot.region, getattr(WeeklySnapshot, column))
            .where(WeeklySnapshot.week_start == monday)
        ).all()
    return Counter({tuple(r[:4]): r[4] for r in rows if r[4]})


SNAPSHOT_KEY = (WeeklySnapshot.week_start, WeeklySnapshot.track_code, WeeklySnapshot.stage_code,
                WeeklySnapshot.tier, WeeklySnapshot.region)
PROGRAM_WEEKS = [W15 - timedelta(days=7) + timedelta(days=7 * i) for i in range(14)]  # 2020-W14..W27


# --- tests ------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def after_the_program(monkeypatch):
    """The dashboard's today a week after the program's end, so its last week (W27) has ended too."""
    from lockstep.config import get_settings

    monkeypatch.setenv("LOCKSTEP_AS_OF", "2020-07-06")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_close_week_equals_a_replay_of_each_tenants_events(engine):
    build_dataset(engine, late_every=5)
    for monday in (PROGRAM_WEEKS[0], W15, W15 + timedelta(days=21), PROGRAM_WEEKS[-1]):
        with write_session(engine) as s:
            result = close_week(session=s, actor=SYSTEM, week_start=monday)
        expected = replayed_counts(engine, monday)
        assert snapshot_counts(engine, monday) == expected
        assert snapshot_counts(engine, monday, "n_current") == expected
        by_track: Counter = Counter()
        for (track, *_), n in expected.items():
            by_track[track] += n
        assert result.totals == dict(by_track)
        # 48 tenants (36 paid); the ones loaded late count only from their first event.
        assert 38 <= result.totals["encryption"] <= 48 and result.totals["e2ee"] <= 36
    # The data must move between weeks, or equal counts would prove little.
    assert replayed_counts(engine, PROGRAM_WEEKS[0]) != replayed_counts(engine, PROGRAM_WEEKS[-1])


def test_backfill_equals_closing_weeks_one_by_one(engine):
    build_dataset(engine, seed=3, late_every=5)
    through = date(2020, 5, 31)
    one_by_one = {}
    with write_session(engine) as s:
        for monday in PROGRAM_WEEKS:
            if monday > through:
                break
            close_week(session=s, actor=SYSTEM, week_start=monday)
        rows = s.execute(select(*SNAPSHOT_KEY, WeeklySnapshot.n_reported)).all()
        one_by_one = {tuple(r[:5]): r[5] for r in rows}
        s.rollback()
    with write_session(engine) as s:
        results = backfill_weeks(session=s, actor=SYSTEM, through=through)
    assert [r.week_label for r in results] == [f"2020-W{w}" for w in range(14, 23)]
    with read_session(engine) as s:
        rows = s.execute(select(*SNAPSHOT_KEY, WeeklySnapshot.n_reported)).all()
    assert {tuple(r[:5]): r[5] for r in rows} == one_by_one
    assert len(one_by_one) > 50


def test_backfill_closes_only_open_weeks_and_stops_at_the_program_today(engine, monkeypatch):
    from lockstep.config import get_settings

    build_dataset(engine, tenants=12)
    monkeypatch.setenv("LOCKSTEP_AS_OF", "2020-05-20")
    get_settings.cache_clear()
    try:
        with write_session(engine) as s:
            close_week(session=s, actor=SYSTEM, week_start=W15)
        with write_session(engine) as s:
            results = backfill_weeks(session=s, actor=SYSTEM)
        # From the program's first week (2020-W14) to the last week ended by Wednesday 2020-05-20
        # (W20: W21 holds that day and is still running), minus W15.
        assert [r.week_label for r in results] == ["2020-W14"] + [f"2020-W{w}" for w in range(16, 21)]
        with write_session(engine) as s:
            assert backfill_weeks(session=s, actor=SYSTEM) == []
        with write_session(engine) as s, pytest.raises(ValidationError, match="already closed; nothing"):
            close_latest_week(session=s, actor=SYSTEM)
    finally:
        get_settings.cache_clear()
    with read_session(engine) as s:
        assert s.scalar(select(func.count()).select_from(SnapshotWeek)) == 7
        actions = s.scalars(
            select(AuditEntry.entity_id).where(AuditEntry.action == "snapshot.close_week")
        ).all()
    assert sorted(actions) == [f"2020-W{w}" for w in range(14, 21)]


def test_close_latest_week_closes_the_last_week_that_ended(engine):
    build_dataset(engine, tenants=8)
    with write_session(engine) as s:
        result = close_latest_week(session=s, actor=SYSTEM)
    # Today 2020-07-06: the week that ended last night is the program's last, 2020-W27.
    assert result.week_label == "2020-W27"
    assert snapshot_counts(engine, date(2020, 6, 29)) == replayed_counts(engine, date(2020, 6, 29))


def test_the_week_holding_the_dashboards_today_stays_open(engine, monkeypatch):
    from lockstep.config import get_settings

    build_dataset(engine, tenants=8)
    # No LOCKSTEP_AS_OF and the program is over: today is its last day, Tuesday 2020-06-30, in W27.
    monkeypatch.delenv("LOCKSTEP_AS_OF")
    get_settings.cache_clear()
    with write_session(engine) as s, pytest.raises(ValidationError, match="has not ended by the dashboard"):
        close_week(session=s, actor=SYSTEM, week_start=date(2020, 6, 29))
    with write_session(engine) as s:
        results = backfill_weeks(session=s, actor=SYSTEM)
    assert results[-1].week_label == "2020-W26"
    # An ordinary event of today is then no restatement.
    with write_session(engine) as s:
        record_event(session=s, actor=SYSTEM, tenant_external_id="T0000", track="encryption",
                     stage="gcm_enforced", occurred_at=datetime(2020, 6, 30, 9), source="test")
    for monday in PROGRAM_WEEKS[:-1]:
        assert snapshot_counts(engine, monday, "n_current") == snapshot_counts(engine, monday)
    monkeypatch.setenv("LOCKSTEP_AS_OF", "2020-07-05")  # Sunday: W27 is still running
    get_settings.cache_clear()
    with write_session(engine) as s, pytest.raises(ValidationError, match="already closed; nothing"):
        close_latest_week(session=s, actor=SYSTEM)


def test_a_back_dated_event_after_close_restates_the_week(engine):
    build_dataset(engine, seed=5, late_every=5)
    monday = W15 + timedelta(days=14)
    with write_session(engine) as s:
        close_week(session=s, actor=SYSTEM, week_start=monday)
        close_week(session=s, actor=SYSTEM, week_start=monday + timedelta(days=7))
    reported = snapshot_counts(engine, monday)
    with read_session(engine) as s:
        # Tenants with no encryption event yet: a back-dated event is legal for any of them.
        quiet = s.scalars(
            select(Tenant.external_id)
            .join(CurrentState, CurrentState.tenant_id == Tenant.id)
            .where(CurrentState.track_code == "encryption", CurrentState.last_event_id.is_(None))
            .order_by(Tenant.id)
        ).all()
    assert quiet
    tenant = quiet[0]
    with write_session(engine) as s:
        record_event(session=s, actor=SYSTEM, tenant_external_id=tenant, track="encryption",
                     stage="gcm_enabled", occurred_at=datetime.combine(monday, datetime.min.time())
                     + timedelta(days=2), source="test")
    assert snapshot_counts(engine, monday) == reported  # as reported: frozen
    current = snapshot_counts(engine, monday, "n_current")
    assert current != reported
    assert current == replayed_counts(engine, monday)
    assert snapshot_counts(engine, monday + timedelta(days=7), "n_current") == replayed_counts(
        engine, monday + timedelta(days=7))


def test_refuses_a_double_close_an_unfinished_week_a_non_monday_and_an_executive(engine):
    build_dataset(engine, tenants=4)
    with write_session(engine) as s:
        close_week(session=s, actor=SYSTEM, week_start=W15)
    with write_session(engine) as s, pytest.raises(ValidationError, match="2020-W15 was already closed"):
        close_week(session=s, actor=SYSTEM, week_start=W15)
    this_week = week_start(utcnow().date())
    with write_session(engine) as s, pytest.raises(ValidationError, match="has not ended yet"):
        close_week(session=s, actor=SYSTEM, week_start=this_week)
    with write_session(engine) as s, pytest.raises(ValidationError, match="has not ended yet"):
        backfill_weeks(session=s, actor=SYSTEM, through=utcnow().date())
    with write_session(engine) as s, pytest.raises(ValidationError, match="is not a Monday"):
        close_week(session=s, actor=SYSTEM, week_start=W15 + timedelta(days=2))
    with write_session(engine) as s, pytest.raises(PermissionDenied):
        close_week(session=s, actor=EXECUTIVE, week_start=W15 + timedelta(days=7))
    with read_session(engine) as s:
        assert s.scalars(select(SnapshotWeek.week_start)).all() == [W15]


def test_backfill_without_a_program_says_to_sync_the_plan(engine):
    with write_session(engine) as s, pytest.raises(ValidationError, match="plan sync"):
        backfill_weeks(session=s, actor=SYSTEM)


# --- the computation against a brute force over all events --------------------------------


def record_shuffled(engine, events, seed: int) -> None:
    """Record events in a random order, so that many arrive back-dated.

    An event the rules refuse for now (e.g. a stage recorded before the roll-back that allows
    it) is tried again after the others; the few that stay refused are left out.
    """
    pending = list(events)
    random.Random(seed).shuffle(pending)
    while pending:
        refused = []
        with write_session(engine) as s:
            for ext, track, stage, at in pending:
                try:
                    record_event(session=s, actor=SYSTEM, tenant_external_id=ext, track=track, stage=stage,
                                 occurred_at=at, source="test")
                except ValidationError:
                    refused.append((ext, track, stage, at))  # validated before any write
        if len(refused) == len(pending):
            return
        pending = refused


def build_shuffled_dataset(engine, *, tenants: int, seed: int) -> list[tuple[str, str, str, datetime]]:
    """Program and tenants; returns the random legal events, not yet recorded."""
    with write_session(engine) as s:
        build_program(s)
        add_tenants(s, tenants, seed, late_every=5)
        return random_events(s, seed)


def brute_force_counts(engine, mondays) -> dict[date, Counter]:
    """Per week: each current_state row in the stage of its latest event (by time, then id) before the end.

    A row counts once its tenant was added or had an event on the track, whichever is earlier.
    """
    with read_session(engine) as s:
        initial = {code: r.initial for code, r in load_track_rules(s).items()}
        timelines: dict[tuple[int, str], list] = {}
        for tenant_id, track, at, event_id, stage in s.execute(
            select(RolloutEvent.tenant_id, RolloutEvent.track_code, RolloutEvent.occurred_at,
                   RolloutEvent.id, RolloutEvent.stage_code)
        ):
            timelines.setdefault((tenant_id, track), []).append((at, event_id, stage))
        states = s.execute(
            select(CurrentState.tenant_id, CurrentState.track_code, CurrentState.tier, CurrentState.region,
                   Tenant.created_at).join(Tenant, Tenant.id == CurrentState.tenant_id)
        ).all()
    out = {}
    for monday in mondays:
        end = week_end(monday)
        counts: Counter = Counter()
        for tenant_id, track, tier, region, created in states:
            before = sorted(e for e in timelines.get((tenant_id, track), []) if e[0] < end)
            if before or created < end:
                counts[(track, before[-1][2] if before else initial[track], tier, region)] += 1
        out[monday] = counts
    return out


def as_counters(counts: dict) -> dict[date, Counter]:
    return {m: Counter(c) for m, c in counts.items()}


def test_both_computations_equal_a_brute_force_over_all_events(engine, monkeypatch):
    from lockstep.services import snapshots
    from lockstep.services.snapshots import as_of_counts, counts_from_current_state, counts_from_events

    events = build_shuffled_dataset(engine, tenants=60, seed=11)
    record_shuffled(engine, events, seed=11)
    with read_session(engine) as s:
        # What the data must hold for the comparison to mean something: back-dated events,
        # same-instant pairs whose id order differs from the index's (time, stage) order,
        # side stages, Monday-midnight events, and tenants without any event.
        rows = s.execute(
            select(RolloutEvent.tenant_id, RolloutEvent.track_code, RolloutEvent.occurred_at,
                   RolloutEvent.stage_code, RolloutEvent.id).order_by(RolloutEvent.id)
        ).all()
        no_events = s.scalar(select(func.count()).select_from(CurrentState)
                             .where(CurrentState.last_event_id.is_(None)))
    latest: dict = {}
    back_dated = 0
    for tenant_id, track, at, _stage, _id in rows:
        back_dated += at < latest.get((tenant_id, track), at)
        latest[(tenant_id, track)] = max(at, latest.get((tenant_id, track), at))
    by_instant: dict = {}
    for tenant_id, track, at, stage, event_id in rows:
        by_instant.setdefault((tenant_id, track, at), []).append((event_id, stage))
    reversed_ties = [v for v in by_instant.values() if len(v) > 1 and sorted(v)[-1][1] < max(s for _, s in v)]
    assert back_dated > 20 and len(reversed_ties) >= 3 and no_events > 0
    assert {r.stage_code for r in rows} >= {BLOCKED, ROLLED_BACK}
    assert any(r.occurred_at == datetime.combine(r.occurred_at.date(), datetime.min.time())
               and r.occurred_at.weekday() == 0 for r in rows)

    selections = [PROGRAM_WEEKS, PROGRAM_WEEKS[:1], PROGRAM_WEEKS[3:4], PROGRAM_WEEKS[-1:],
                  [PROGRAM_WEEKS[i] for i in (1, 2, 6, 9, 13)], [W15 - timedelta(days=28)]]
    for mondays in selections:
        expected = brute_force_counts(engine, mondays)
        with read_session(engine) as s:
            assert as_counters(counts_from_events(session=s, mondays=mondays)) == expected, mondays
            assert as_counters(counts_from_current_state(session=s, mondays=mondays)) == expected, mondays
            assert as_counters(as_of_counts(session=s, mondays=mondays)) == expected, mondays
    # The weeks differ, or equal counts would prove little.
    assert len({frozenset(c.items()) for c in brute_force_counts(engine, PROGRAM_WEEKS).values()}) > 5
    # PostgreSQL parses a (track, tier, region)'s rows in pieces of PIECE_CHARS: here one row each.
    monkeypatch.setattr(snapshots, "PIECE_CHARS", 1)
    with read_session(engine) as s:
        assert as_counters(counts_from_events(session=s, mondays=PROGRAM_WEEKS)) == brute_force_counts(
            engine, PROGRAM_WEEKS)


def test_weeks_closed_one_at_a_time_with_late_events_agree_with_a_backfill_and_the_brute_force(engine):
    events = build_shuffled_dataset(engine, tenants=40, seed=13)
    rnd = random.Random(13)
    # Most events arrive on time; the rest trickle in while the weeks are being closed.
    late = set(rnd.sample(range(len(events)), len(events) // 4))
    record_shuffled(engine, [e for i, e in enumerate(events) if i not in late], seed=13)
    trickle = [e for i, e in enumerate(events) if i in late]
    for monday in PROGRAM_WEEKS:
        with write_session(engine) as s:
            close_week(session=s, actor=SYSTEM, week_start=monday)
        assert snapshot_counts(engine, monday) == brute_force_counts(engine, [monday])[monday]
        batch, trickle = trickle[:4], trickle[4:]
        record_shuffled(engine, batch, seed=monday.toordinal())
    record_shuffled(engine, trickle, seed=1)

    final = brute_force_counts(engine, PROGRAM_WEEKS)
    restated = 0
    for monday in PROGRAM_WEEKS:
        # n_current moved with every late event, so it equals a fresh count of today's events.
        assert snapshot_counts(engine, monday, "n_current") == final[monday]
        restated += snapshot_counts(engine, monday) != final[monday]
    assert restated >= 3
    with write_session(engine) as s:
        s.execute(WeeklySnapshot.__table__.delete())
        s.execute(SnapshotWeek.__table__.delete())
    with write_session(engine) as s:
        backfill_weeks(session=s, actor=SYSTEM)
    for monday in PROGRAM_WEEKS:
        assert snapshot_counts(engine, monday) == final[monday]


def test_closing_the_week_that_just_ended_does_not_replay_every_event(engine, monkeypatch):
    from lockstep.services import snapshots

    build_dataset(engine, tenants=30, seed=17)
    last = PROGRAM_WEEKS[-1]
    expected = brute_force_counts(engine, [last])[last]

    def refuse(**_kwargs):
        raise AssertionError("replayed every event to close one week")

    monkeypatch.setattr(snapshots, "counts_from_events", refuse)
    with write_session(engine) as s:
        close_week(session=s, actor=SYSTEM, week_start=last)
    assert snapshot_counts(engine, last) == expected


def test_an_event_in_the_last_millisecond_of_sunday_counts_in_its_own_week(engine):
    # SQLite's date functions round a timestamp to the millisecond; the week must come from
    # the stored date, as PostgreSQL and the restatement's "occurred_at < end" have it.
    with write_session(engine) as s:
        build_program(s)
        add_tenants(s, 4, seed=19)
        tier, region = s.execute(
            select(Tenant.tier, Tenant.region).where(Tenant.external_id == "T0000")
        ).one()
    sunday_night = week_end(W15) - timedelta(microseconds=100)  # 2020-04-12 23:59:59.999900
    with write_session(engine) as s:
        record_event(session=s, actor=SYSTEM, tenant_external_id="T0000", track="encryption",
                     stage="clients_upgraded", occurred_at=sunday_night, source="test")
    with write_session(engine) as s:
        backfill_weeks(session=s, actor=SYSTEM, through=W15 + timedelta(days=7))
    assert snapshot_counts(engine, W15)[("encryption", "clients_upgraded", tier, region)] == 1
    assert snapshot_counts(engine, W15) == brute_force_counts(engine, [W15])[W15]
    assert snapshot_counts(engine, PROGRAM_WEEKS[0])[("encryption", "clients_upgraded", tier, region)] == 0
