"""The overview's rollout numbers: tenants per stage now and a week ago, readiness, E2EE.

"Now" is read from the live counts (stage_counts, kept per account manager too, so a
manager's numbers are their own tenants').

"A week ago" means the end of the day seven days before the program's today:

- When a closed week ended at least that long ago, the newest such one's snapshot
  (weekly_snapshots, n_current so back-dated events are included) is used: the state at
  the end of that week, seven to thirteen days before the end of today. Exact, and the
  label names the week, its last day and how many days back it is. (A week that ended
  less than seven days ago would make a shorter change read as a week's.)
- Otherwise (no closed week, or an account manager: snapshots know no managers) it is
  approximated from current_state.since: a tenant whose `since` is later than that day
  moved within the week, and is assumed to have come from the stage just before its
  current one (a blocked tenant from the stage it had reached, a rolled-back tenant
  from the stage after the one it returned to, a tenant at the first stage did not
  exist yet). Skipped stages and several moves in one week are not seen; the result is
  labelled approximate. A `since` after today is not a move within the week: it is a row
  written after the dashboard's today (e.g. a tenant loaded later, with no event yet).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from lockstep.clock import week_label, week_start
from lockstep.models import (
    CurrentState,
    SnapshotWeek,
    StageCount,
    StageTotal,
    Tier,
    Track,
    TrackStage,
    WeeklySnapshot,
)
from lockstep.permissions import Actor
from lockstep.queries.program import program_today
from lockstep.rollout_rules import BLOCKED, ROLLED_BACK


@dataclass(frozen=True)
class StageMix:
    """Tenants per stage of one track, now and a week ago, and how the week-ago was found.

    counts columns: stage, label (the stage's name), position (int; side stages after the ordered ones),
    is_side (bool), ready (bool: at or past the track's ready stage), n (int),
    n_week_ago (int).
    """

    track: str
    counts: pd.DataFrame
    basis: str
    approximate: bool

    @property
    def total(self) -> int:
        """Tenants on the track now."""
        return int(self.counts["n"].sum())

    @property
    def total_week_ago(self) -> int:
        """Tenants on the track a week ago."""
        return int(self.counts["n_week_ago"].sum())

    def at(self, stage: str, *, week_ago: bool = False) -> int:
        """Tenants at `stage` now (or a week ago)."""
        col = "n_week_ago" if week_ago else "n"
        return int(self.counts.loc[self.counts["stage"] == stage, col].sum())

    def ready(self, *, week_ago: bool = False) -> int:
        """Tenants at or past the ready stage now (or a week ago)."""
        col = "n_week_ago" if week_ago else "n"
        return int(self.counts.loc[self.counts["ready"], col].sum())


def _stages(session: Session, track: str) -> pd.DataFrame:
    rows = session.execute(
        select(TrackStage.code, TrackStage.name, TrackStage.position, TrackStage.is_side)
        .where(TrackStage.track_code == track)
        .order_by(TrackStage.is_side, TrackStage.position, TrackStage.code)
    ).all()
    frame = pd.DataFrame(rows, columns=["stage", "label", "position", "is_side"])
    frame["position"] = range(len(frame))
    frame["is_side"] = frame["is_side"].astype(bool)
    return frame


def _paid_tiers():
    return select(Tier.code).where(Tier.paid.is_(True))


def _counts_now(session: Session, actor: Actor, track: str, paid_only: bool) -> dict[str, int]:
    # A manager's own rows of stage_counts; everyone else the rollup over managers.
    counts = StageCount if actor.is_manager else StageTotal
    stmt = (
        select(counts.stage_code, func.sum(counts.n))
        .where(counts.track_code == track)
        .group_by(counts.stage_code)
    )
    if actor.is_manager:
        stmt = stmt.where(StageCount.account_manager == actor.email)
    if paid_only:
        stmt = stmt.where(counts.tier.in_(_paid_tiers()))
    return {stage: int(n or 0) for stage, n in session.execute(stmt)}


def _counts_from_snapshot(session: Session, monday: date, track: str, paid_only: bool) -> dict[str, int]:
    stmt = (
        select(WeeklySnapshot.stage_code, func.sum(WeeklySnapshot.n_current))
        .where(WeeklySnapshot.week_start == monday, WeeklySnapshot.track_code == track)
        .group_by(WeeklySnapshot.stage_code)
    )
    if paid_only:
        stmt = stmt.where(WeeklySnapshot.tier.in_(_paid_tiers()))
    return {stage: int(n or 0) for stage, n in session.execute(stmt)}


def _movers_between(
    session: Session, actor: Actor, track: str, after: datetime, before: datetime, paid_only: bool
) -> list[tuple[str, str, int]]:
    stmt = (
        select(CurrentState.stage_code, CurrentState.reached_stage_code, func.count())
        .where(CurrentState.track_code == track, CurrentState.since >= after, CurrentState.since < before)
        .group_by(CurrentState.stage_code, CurrentState.reached_stage_code)
    )
    if actor.is_manager:
        stmt = stmt.where(CurrentState.account_manager == actor.email)
    if paid_only:
        stmt = stmt.where(CurrentState.tier.in_(_paid_tiers()))
    return [(s, r, int(n)) for s, r, n in session.execute(stmt)]


def assumed_origin(stage: str, reached: str, ordered: list[str]) -> str | None:
    """The stage a tenant that moved this week is assumed to have come from (None: it is new)."""
    if stage == BLOCKED:
        return reached
    if stage == ROLLED_BACK:
        pos = ordered.index(reached) if reached in ordered else -1
        return ordered[pos + 1] if 0 <= pos < len(ordered) - 1 else None
    pos = ordered.index(stage) if stage in ordered else 0
    return ordered[pos - 1] if pos > 0 else None


def track_stage_mix(
    *, session: Session, actor: Actor, track: str, paid_only: bool = False, today: date | None = None
) -> StageMix:
    """Tenants per stage of `track` now and a week ago (see the module docstring for "a week ago").

    Account managers count their own tenants only. `paid_only` keeps paid tiers. Today and
    the closed weeks are those of the program the track belongs to.
    """
    program, ready_stage = session.execute(
        select(Track.program_id, Track.ready_stage).where(Track.code == track)
    ).first() or (None, None)
    today = today or program_today(session=session, program=program)
    ago = today - timedelta(days=7)
    stages = _stages(session, track)
    ordered = stages.loc[~stages["is_side"], "stage"].tolist()
    if ready_stage not in ordered:
        ready_stage = ordered[-1] if ordered else None
    ready_from = ordered.index(ready_stage) if ready_stage else len(ordered)

    now = _counts_now(session, actor, track, paid_only)
    # The newest week that ended by the end of the day a week ago (its Monday 00:00 end <= ago + 1).
    monday = week_start(ago + timedelta(days=1)) - timedelta(days=7)
    closed = (
        not actor.is_manager
        and program is not None
        and session.get(SnapshotWeek, (program, monday)) is not None
    )
    if closed:
        before = _counts_from_snapshot(session, monday, track, paid_only)
        sunday = monday + timedelta(days=6)
        days = (today - sunday).days
        back = "exactly a week" if days == 7 else f"{days} days"
        basis = (
            f"vs the closed snapshot of {week_label(monday)}, as of the end of {sunday:%a %b} {sunday.day} "
            f"({back} before the end of today)"
        )
    else:
        before = dict(now)
        after = datetime.combine(ago + timedelta(days=1), datetime.min.time())
        before_end = datetime.combine(today + timedelta(days=1), datetime.min.time())
        for stage, reached, n in _movers_between(session, actor, track, after, before_end, paid_only):
            before[stage] = before.get(stage, 0) - n
            origin = assumed_origin(stage, reached, ordered)
            if origin is not None:
                before[origin] = before.get(origin, 0) + n
        basis = (
            f"vs {ago:%b} {ago.day}, approximate: tenants that moved since then are assumed "
            "to have come from the stage before"
        )
    known = set(stages["stage"])
    extra = sorted((set(now) | set(before)) - known)
    frame = pd.concat(
        [
            stages,
            pd.DataFrame(
                {"stage": extra, "label": extra, "position": range(len(stages), len(stages) + len(extra))}
            ),
        ],
        ignore_index=True,
    )
    frame["is_side"] = frame["is_side"].fillna(True).astype(bool)
    frame["ready"] = [s in ordered and ordered.index(s) >= ready_from for s in frame["stage"]]
    frame["n"] = [now.get(s, 0) for s in frame["stage"]]
    frame["n_week_ago"] = [max(0, before.get(s, 0)) for s in frame["stage"]]
    frame = frame[["stage", "label", "position", "is_side", "ready", "n", "n_week_ago"]]
    return StageMix(track, frame, basis, approximate=not closed)


def final_stage(*, session: Session, track: str) -> str | None:
    """The last ordered stage of `track` (e.g. 'enabled' for e2ee), or None for an unknown track."""
    return session.scalar(
        select(TrackStage.code)
        .where(TrackStage.track_code == track, TrackStage.is_side.is_(False))
        .order_by(TrackStage.position.desc())
        .limit(1)
    )
