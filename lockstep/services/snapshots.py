"""Closing weeks: freeze tenants per (week, track, stage, tier, region) into weekly_snapshots.

A week's count is "as of the end of the ISO week" (Monday 00:00 UTC of the next week): a
tenant is in the stage of its latest event before that instant, or in the track's first
stage when it has none. That is the same rule `_restate_closed_weeks` in
`lockstep.services.rollout` uses to move n_current when a back-dated event arrives later,
so a restatement and a fresh close always agree.

Which tenants count: every (tenant, track) with a current_state row, whatever the tenant's
created_at. Tenants are often loaded long after the events they carry (imports, the demo),
so created_at says nothing about when a tenant joined the program.

How: one pass over the events. Each event is a transition (previous stage -> its stage),
the previous stage coming from LAG() over the tenant's timeline. Summing +1 for the new
stage and -1 for the old one per ISO week, then accumulating week by week from "everyone
in the first stage", gives the as-of counts of every week at once; the rows of many
weeks come out of a single GROUP BY instead of one scan per week.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta

from sqlalchemy import Date, case, cast, func, insert, select
from sqlalchemy.orm import Session

from lockstep.clock import utcnow, week_end, week_label, week_start
from lockstep.errors import ValidationError
from lockstep.models import CurrentState, Program, RolloutEvent, SnapshotWeek, WeeklySnapshot
from lockstep.permissions import Actor, require
from lockstep.queries.program import program_today
from lockstep.services import audit
from lockstep.services.rollout import load_track_rules

Key = tuple[str, str, str, str]  # (track, stage, tier, region)


@dataclass(frozen=True)
class CloseResult:
    """One closed week: how many snapshot rows were frozen and tenants per track."""

    week_start: date
    week_label: str
    rows: int
    totals: dict[str, int] = field(default_factory=dict)

    def __str__(self) -> str:
        tracks = ", ".join(f"{track} {n:,} tenants" for track, n in sorted(self.totals.items()))
        return f"{self.week_label} ({self.rows} rows: {tracks or 'no tenants'})"


def close_week(*, session: Session, actor: Actor, week_start: date) -> CloseResult:
    """Freeze the counts as of the end of the ISO week starting on `week_start` (a Monday)."""
    require(actor, "snapshot.close")
    _check_monday(week_start)
    _check_ended(week_start)
    closed = session.get(SnapshotWeek, week_start)
    if closed is not None:
        raise ValidationError(
            f"week {week_label(week_start)} was already closed on {closed.closed_at:%Y-%m-%d %H:%M} UTC "
            f"by {closed.closed_by}; a closed week stays as reported (later changes show as restatements)"
        )
    return _close(session, actor, [week_start])[0]


def close_latest_week(*, session: Session, actor: Actor) -> CloseResult:
    """Close the last week that has ended (capped at the program's today), if still open."""
    require(actor, "snapshot.close")
    monday = last_closable_week(session=session)
    if session.get(SnapshotWeek, monday) is not None:
        raise ValidationError(
            f"week {week_label(monday)}, the last week that has ended, is already closed; "
            "nothing to close (use `snapshot backfill` to close earlier open weeks)"
        )
    return close_week(session=session, actor=actor, week_start=monday)


def backfill_weeks(*, session: Session, actor: Actor, through: date | None = None) -> list[CloseResult]:
    """Close every open week from the program's first ISO week through `through` (default: last ended)."""
    require(actor, "snapshot.close")
    start = session.scalar(select(func.min(Program.start_date)))
    if start is None:
        raise ValidationError(
            "there is no program in the database, so there are no weeks to close: "
            "run `python -m lockstep plan sync plan/90-day-plan.yaml` first"
        )
    if through is None:
        last = last_closable_week(session=session)
    else:
        last = week_start(through)
        _check_ended(last)
    closed = set(session.scalars(select(SnapshotWeek.week_start)).all())
    mondays = []
    monday = week_start(start)
    while monday <= last:
        if monday not in closed:
            mondays.append(monday)
        monday += timedelta(days=7)
    return _close(session, actor, mondays) if mondays else []


def last_closable_week(*, session: Session) -> date:
    """Monday of the newest week that has ended, and not after the program's today."""
    last_ended = week_start(utcnow().date()) - timedelta(days=7)
    return min(last_ended, week_start(program_today(session=session)))


def _check_monday(monday: date) -> None:
    if monday.weekday() != 0:
        raise ValidationError(
            f"{monday:%Y-%m-%d} is not a Monday; an ISO week starts on Monday "
            f"(that day is in {week_label(week_start(monday))}, which starts {week_start(monday):%Y-%m-%d})"
        )


def _check_ended(monday: date) -> None:
    end = week_end(monday)
    if end > utcnow():
        raise ValidationError(
            f"week {week_label(monday)} has not ended yet (it ends {end:%Y-%m-%d %H:%M} UTC); "
            "only a finished week can be closed"
        )


def _close(session: Session, actor: Actor, mondays: list[date]) -> list[CloseResult]:
    """Compute the as-of counts of `mondays` in one pass, insert them and audit each week."""
    mondays = sorted(mondays)
    counts = as_of_counts(session=session, mondays=mondays)
    now = utcnow()
    session.execute(
        insert(SnapshotWeek), [{"week_start": m, "closed_at": now, "closed_by": actor.email} for m in mondays]
    )
    results = []
    for monday in mondays:
        rows = [
            {
                "week_start": monday,
                "track_code": track,
                "stage_code": stage,
                "tier": tier,
                "region": region,
                "n_reported": n,
                "n_current": n,
            }
            for (track, stage, tier, region), n in sorted(counts[monday].items())
        ]
        if rows:
            session.execute(insert(WeeklySnapshot), rows)
        totals: dict[str, int] = defaultdict(int)
        for row in rows:
            totals[row["track_code"]] += row["n_reported"]
        result = CloseResult(monday, week_label(monday), len(rows), dict(totals))
        audit.append(
            session,
            actor,
            "snapshot.close_week",
            "week",
            result.week_label,
            after={"rows": result.rows, "totals": result.totals},
        )
        results.append(result)
    return results


def as_of_counts(*, session: Session, mondays: list[date]) -> dict[date, dict[Key, int]]:
    """Tenants per (track, stage, tier, region) at the end of each week in `mondays`."""
    if not mondays:
        return {}
    mondays = sorted(mondays)
    initial = {code: rules.initial for code, rules in load_track_rules(session).items() if rules.stages}

    running: dict[Key, int] = defaultdict(int)
    for track, tier, region, n in session.execute(
        select(CurrentState.track_code, CurrentState.tier, CurrentState.region, func.count()).group_by(
            CurrentState.track_code, CurrentState.tier, CurrentState.region
        )
    ):
        if track in initial:
            running[(track, initial[track], tier, region)] += n

    result: dict[date, dict[Key, int]] = {}
    deltas = _weekly_transitions(session, initial)
    i = 0
    for monday in mondays:
        # Transitions from weeks before the first one asked for (even before the program) fold in too;
        # those after the last one are never applied.
        while i < len(deltas) and deltas[i][0] <= monday:
            wk, track, tier, region, new, old, n = deltas[i]
            running[(track, new, tier, region)] += n
            running[(track, old, tier, region)] -= n
            i += 1
        result[monday] = {key: n for key, n in running.items() if n}
    return result


def _weekly_transitions(session: Session, initial: dict[str, str]) -> list[tuple]:
    """(week, track, tier, region, new stage, old stage, tenants) for every event, oldest week first.

    No WHERE on purpose: over the whole table SQLite walks the (tenant, track, occurred_at)
    unique index in order for LAG(), where a time filter would make it sort every event.
    """
    e, cs = RolloutEvent, CurrentState
    previous = func.lag(e.stage_code).over(
        partition_by=(e.tenant_id, e.track_code), order_by=(e.occurred_at, e.id)
    )
    t = (
        select(
            _week_of(session, e.occurred_at).label("wk"),
            e.track_code.label("track"),
            cs.tier.label("tier"),
            cs.region.label("region"),
            e.stage_code.label("new_stage"),
            func.coalesce(previous, case(initial, value=e.track_code)).label("old_stage"),
        )
        .join(cs, (cs.tenant_id == e.tenant_id) & (cs.track_code == e.track_code))
        .subquery("t")
        .c
    )
    rows = session.execute(
        select(t.wk, t.track, t.tier, t.region, t.new_stage, t.old_stage, func.count())
        .where(t.new_stage != t.old_stage)
        .group_by(t.wk, t.track, t.tier, t.region, t.new_stage, t.old_stage)
    ).all()
    return sorted((_as_date(wk), *rest[:-1], int(rest[-1])) for wk, *rest in rows)


def _week_of(session: Session, column):
    """The Monday of the ISO week holding `column`, computed by the database."""
    if session.get_bind().dialect.name == "sqlite":
        # 'weekday 0' moves forward to Sunday (or stays on one); six days back is that week's Monday.
        return func.date(column, "weekday 0", "-6 days")
    return cast(func.date_trunc("week", column), Date)


def _as_date(value) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])
