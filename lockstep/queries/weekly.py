"""The weekly picture for executives: closed weeks only, as reported and as restated since.

Every weekly number comes from weekly_snapshots (frozen when a week closes): n_reported
is what the week said when it closed, n_current follows back-dated events recorded
later. A number whose two values differ is "restated". The top risks are the exception:
they are about today (live current_state and the plan), not about a closed week.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import pandas as pd
from sqlalchemy import and_, case, func, select, true
from sqlalchemy.orm import Session

from lockstep.clock import week_label
from lockstep.forecast import Forecast, WeekPoint, project
from lockstep.models import (
    CurrentState,
    PlanItem,
    SnapshotWeek,
    StageCount,
    StageTotal,
    Tenant,
    Tier,
    Track,
    TrackStage,
    WeeklySnapshot,
    Workstream,
)
from lockstep.permissions import Actor
from lockstep.queries.overview import final_stage
from lockstep.queries.plan import is_overdue
from lockstep.queries.plan import plan_burnup as plan_burnup_by_program_week
from lockstep.queries.program import default_program, program_today, program_track
from lockstep.queries.scope import scoped
from lockstep.rollout_rules import BLOCKED, ROLLED_BACK

ENCRYPTION = "encryption"
E2EE = "e2ee"
TOP_TENANTS = 10
# Why a tenant counts as stuck, in words for the tables, and the per-tier column of each.
STUCK_REASONS = ("blocked", "rolled back", "legacy cipher after the deadline")
STUCK_COLUMNS = ("blocked", "rolled_back", "not_started_late")

WS = WeeklySnapshot


def _labels(frame: pd.DataFrame) -> pd.DataFrame:
    frame.insert(1, "week_label", [week_label(w) for w in frame["week_start"]])
    return frame


def _upto(as_of_week: date | None):
    return WS.week_start <= as_of_week if as_of_week is not None else true()


def closed_weeks(*, session: Session, program: str | None = None) -> pd.DataFrame:
    """Every closed week of the program (default: `default_program`), oldest first.

    Columns: week_start (date, Monday), week_label ('2020-W21'), closed_at (datetime),
    closed_by (str), restated (bool: some number of the week changed since it closed).
    """
    program = program or default_program(session=session)
    changed = func.max(case((WS.n_current != WS.n_reported, 1), else_=0))
    same_week = and_(WS.program_id == SnapshotWeek.program_id, WS.week_start == SnapshotWeek.week_start)
    rows = session.execute(
        select(SnapshotWeek.week_start, SnapshotWeek.closed_at, SnapshotWeek.closed_by, changed)
        .outerjoin(WS, same_week)
        .where(SnapshotWeek.program_id == program)
        .group_by(SnapshotWeek.week_start, SnapshotWeek.closed_at, SnapshotWeek.closed_by)
        .order_by(SnapshotWeek.week_start)
    ).all()
    frame = pd.DataFrame(
        [(w, at, by, bool(r)) for w, at, by, r in rows],
        columns=["week_start", "closed_at", "closed_by", "restated"],
    )
    return _labels(frame)


def stage_mix_by_week(
    *, session: Session, track: str, tiers: list[str] | None = None, as_of_week: date | None = None
) -> pd.DataFrame:
    """Tenants per stage at the end of each closed week up to `as_of_week`, stages in track order.

    Columns: week_start (date), week_label (str), stage_code (str), position (int; side
    stages after the ordered ones), n_reported (int), n_current (int), restated (bool).
    """
    position = func.coalesce(func.max(TrackStage.position), 999)
    stmt = (
        select(WS.week_start, WS.stage_code, position, func.sum(WS.n_reported), func.sum(WS.n_current))
        .outerjoin(TrackStage, and_(TrackStage.track_code == WS.track_code, TrackStage.code == WS.stage_code))
        .where(WS.track_code == track, _upto(as_of_week))
        .group_by(WS.week_start, WS.stage_code)
        .order_by(WS.week_start, position, WS.stage_code)
    )
    if tiers:
        stmt = stmt.where(WS.tier.in_(tiers))
    frame = pd.DataFrame(
        [(w, s, int(p), int(r), int(c)) for w, s, p, r, c in session.execute(stmt)],
        columns=["week_start", "stage_code", "position", "n_reported", "n_current"],
    )
    frame["restated"] = frame["n_reported"] != frame["n_current"]
    return _labels(frame)


def e2ee_adoption_by_week(
    *, session: Session, as_of_week: date | None = None, track: str = E2EE
) -> pd.DataFrame:
    """Share of paid-tier tenants at the track's last stage (E2EE enabled) per closed week.

    Columns: week_start (date), week_label (str), paid_reported (int), enabled_reported
    (int), pct_reported (float), paid_current (int), enabled_current (int), pct_current
    (float; NaN when there are no paid tenants), restated (bool).
    """
    final = final_stage(session=session, track=track)
    enabled = WS.stage_code == final
    rows = session.execute(
        select(
            WS.week_start,
            func.sum(WS.n_reported),
            func.sum(case((enabled, WS.n_reported), else_=0)),
            func.sum(WS.n_current),
            func.sum(case((enabled, WS.n_current), else_=0)),
        )
        .join(Tier, Tier.code == WS.tier)
        .where(WS.track_code == track, Tier.paid.is_(True), _upto(as_of_week))
        .group_by(WS.week_start)
        .order_by(WS.week_start)
    ).all()
    frame = pd.DataFrame(
        [tuple(int(v) for v in r[1:]) for r in rows],
        columns=["paid_reported", "enabled_reported", "paid_current", "enabled_current"],
    )
    frame.insert(0, "week_start", [r[0] for r in rows])
    for kind in ("reported", "current"):
        paid = frame[f"paid_{kind}"].astype(float).where(frame[f"paid_{kind}"] > 0)
        frame[f"pct_{kind}"] = 100.0 * frame[f"enabled_{kind}"] / paid
    frame["restated"] = (frame["enabled_reported"] != frame["enabled_current"]) | (
        frame["paid_reported"] != frame["paid_current"]
    )
    frame = frame[["week_start", "paid_reported", "enabled_reported", "pct_reported",
                   "paid_current", "enabled_current", "pct_current", "restated"]]
    return _labels(frame)


def restated_numbers(
    *, session: Session, as_of_week: date | None = None, program: str | None = None
) -> pd.DataFrame:
    """Every (week, track, stage) of the program whose count changed after its week closed, newest week first.

    Columns: week_start (date), week_label (str), track_code (str), stage_code (str),
    n_reported (int), n_current (int), change (int = current - reported).
    """
    program = program or default_program(session=session)
    rows = session.execute(
        select(WS.week_start, WS.track_code, WS.stage_code, func.sum(WS.n_reported), func.sum(WS.n_current))
        .where(_upto(as_of_week), WS.program_id == program)
        .group_by(WS.week_start, WS.track_code, WS.stage_code)
        .having(func.sum(WS.n_reported) != func.sum(WS.n_current))
        .order_by(WS.week_start.desc(), WS.track_code, WS.stage_code)
    ).all()
    frame = pd.DataFrame(
        [(w, t, s, int(r), int(c)) for w, t, s, r, c in rows],
        columns=["week_start", "track_code", "stage_code", "n_reported", "n_current"],
    )
    frame["change"] = frame["n_current"] - frame["n_reported"]
    return _labels(frame)


def plan_burnup(
    *, session: Session, as_of_week: date | None = None, today: date | None = None, program: str | None = None
) -> pd.DataFrame:
    """Cumulative plan items due vs done by the end of each closed week up to `as_of_week`.

    The counting is lockstep.queries.plan.plan_burnup's, over the closed ISO weeks instead
    of program weeks so the x axis lines up with the other weekly charts.
    Columns: week_start (date), week_label (str), planned (int), done (float, NaN for
    weeks that start after today).
    """
    program = program or default_program(session=session)
    stmt = (
        select(SnapshotWeek.week_start)
        .where(SnapshotWeek.program_id == program)
        .order_by(SnapshotWeek.week_start)
    )
    if as_of_week is not None:
        stmt = stmt.where(SnapshotWeek.week_start <= as_of_week)
    weeks = session.scalars(stmt).all()
    if not weeks:
        return _labels(pd.DataFrame(columns=["week_start", "planned", "done"]))
    frame = plan_burnup_by_program_week(
        session=session, start=weeks[0], end=weeks[-1] + timedelta(days=6), today=today, program=program
    )
    frame = frame[frame["week_start"].isin(set(weeks))]
    return _labels(frame[["week_start", "planned", "done"]].reset_index(drop=True))


def encryption_forecast(*, session: Session, as_of_week: date, track: str = ENCRYPTION) -> Forecast:
    """When every tenant reaches the track's last stage, from the closed weeks up to `as_of_week`."""
    final = final_stage(session=session, track=track)
    deadline = session.scalar(select(Track.deadline).where(Track.code == track))
    rows = session.execute(
        select(WS.week_start, func.sum(case((WS.stage_code == final, WS.n_current), else_=0)),
               func.sum(WS.n_current))
        .where(WS.track_code == track, WS.week_start <= as_of_week)
        .group_by(WS.week_start)
        .order_by(WS.week_start)
    ).all()
    return project([WeekPoint(w, int(d), int(t)) for w, d, t in rows], deadline=deadline)


@dataclass(frozen=True)
class RunningWeek:
    """The week holding the program's today, not closed yet: its numbers so far, from the live counts."""

    week_start: date
    week_label: str
    today: date
    enforced: int  # tenants at the encryption track's last stage now
    on_encryption: int
    e2ee_enabled: int  # paid tenants at the e2ee track's last stage now
    paid: int

    @property
    def enforced_pct(self) -> float | None:
        """GCM enforced so far, % of tenants on the track (None without tenants)."""
        return 100.0 * self.enforced / self.on_encryption if self.on_encryption else None

    @property
    def e2ee_pct(self) -> float | None:
        """Paid tenants with E2EE so far, % (None without paid tenants)."""
        return 100.0 * self.e2ee_enabled / self.paid if self.paid else None


def running_week(*, session: Session, program: str | None = None) -> RunningWeek | None:
    """The week in progress (holding the program's today) with its live numbers; None once it is closed.

    Live means now: every event recorded so far, moving until the week ends and is closed.
    Same definitions as the closed weeks' headline (encryption_forecast, e2ee_adoption_by_week),
    over the program's encryption and E2EE tracks (`program_track`; zeros when it has none).
    """
    program = program or default_program(session=session)
    today = program_today(session=session, program=program)
    monday = today - timedelta(days=today.weekday())
    if session.get(SnapshotWeek, (program, monday)) is not None:
        return None
    sc = StageTotal  # everyone's tenants: the rollup over managers
    enc_track = program_track(session=session, kind=ENCRYPTION, program=program)
    e2ee_track = program_track(session=session, kind=E2EE, program=program)
    enforced = final_stage(session=session, track=enc_track) if enc_track else None
    enabled = final_stage(session=session, track=e2ee_track) if e2ee_track else None
    enc = session.execute(
        select(func.sum(case((sc.stage_code == enforced, sc.n), else_=0)), func.sum(sc.n))
        .where(sc.track_code == enc_track)
    ).one()
    e2ee = session.execute(
        select(func.sum(case((sc.stage_code == enabled, sc.n), else_=0)), func.sum(sc.n))
        .join(Tier, Tier.code == sc.tier)
        .where(sc.track_code == e2ee_track, Tier.paid.is_(True))
    ).one()
    return RunningWeek(monday, week_label(monday), today, int(enc[0] or 0), int(enc[1] or 0),
                       int(e2ee[0] or 0), int(e2ee[1] or 0))


@dataclass(frozen=True)
class TopRisks:
    """Today's top risks: overdue plan items, stuck tenants by tier, the largest stuck tenants."""

    as_of: date
    overdue_items: pd.DataFrame
    stuck_by_tier: pd.DataFrame
    largest_stuck: pd.DataFrame


def overdue_plan_items(*, session: Session, as_of: date, program: str | None = None) -> pd.DataFrame:
    """The program's live plan items not done by `as_of` and due before it, most overdue first.

    Columns: id, title, workstream, owner, due_date (date), days_overdue (int), status, percent (int).
    """
    program = program or default_program(session=session)
    rows = session.execute(
        select(PlanItem.id, PlanItem.title, Workstream.name, PlanItem.owner, PlanItem.due_date,
               PlanItem.status, PlanItem.percent)
        .join(Workstream, Workstream.code == PlanItem.workstream_code)
        .where(PlanItem.retired_at.is_(None), PlanItem.program_id == program, is_overdue(as_of, asof=as_of))
        .order_by(PlanItem.due_date, PlanItem.id)
    ).all()
    frame = pd.DataFrame(
        [(i, t, w, o, d, (as_of - d).days, s, int(p)) for i, t, w, o, d, s, p in rows],
        columns=["id", "title", "workstream", "owner", "due_date", "days_overdue", "status", "percent"],
    )
    return frame


def _stuck_stages(session: Session, track: str, as_of: date) -> list[str]:
    """Stages where a tenant is stuck on `track` on `as_of`: side stages, the first one after the deadline."""
    deadline, initial = session.execute(
        select(Track.deadline, TrackStage.code)
        .join(TrackStage, TrackStage.track_code == Track.code)
        .where(Track.code == track, TrackStage.is_side.is_(False))
        .order_by(TrackStage.position)
        .limit(1)
    ).one()
    late = deadline is not None and as_of > deadline
    # One IN list (not an OR) so both backends read the (track, stage) index.
    return [BLOCKED, ROLLED_BACK, *([initial] if late else [])]


def _reason(stage):
    return case((stage == BLOCKED, STUCK_REASONS[0]), (stage == ROLLED_BACK, STUCK_REASONS[1]),
                else_=STUCK_REASONS[2])


def stuck_tenants_by_tier(
    *, session: Session, actor: Actor, as_of: date, track: str = ENCRYPTION
) -> pd.DataFrame:
    """Tenants stuck on `track` now, per tier (the actor's own tenants for an account manager).

    Stuck: blocked, rolled back, or still at the first stage after the track's deadline.
    Columns: tier (code), tier_name, blocked (int), rolled_back (int), not_started_late (int), total (int).
    """
    sc = StageCount if actor.is_manager else StageTotal  # a manager's own rows, or the rollup
    reason = _reason(sc.stage_code)
    stmt = (
        select(Tier.code, Tier.name, reason.label("reason"), func.sum(sc.n))
        .select_from(sc)
        .join(Tier, Tier.code == sc.tier)
        .where(sc.track_code == track, sc.stage_code.in_(_stuck_stages(session, track, as_of)))
        .group_by(Tier.code, Tier.name, Tier.position, reason)
        .having(func.sum(sc.n) > 0)
        .order_by(Tier.position)
    )
    rows = session.execute(scoped(stmt, actor, StageCount.account_manager)).all()
    by_tier: dict[str, dict] = {}
    for code, name, why, n in rows:
        entry = by_tier.setdefault(code, {"tier": code, "tier_name": name, **dict.fromkeys(STUCK_COLUMNS, 0)})
        entry[STUCK_COLUMNS[STUCK_REASONS.index(why)]] += int(n)
    frame = pd.DataFrame(list(by_tier.values()), columns=["tier", "tier_name", *STUCK_COLUMNS])
    frame["total"] = frame[list(STUCK_COLUMNS)].sum(axis=1).astype(int)
    return frame


def largest_stuck_tenants(
    *, session: Session, actor: Actor, as_of: date, track: str = ENCRYPTION, limit: int = TOP_TENANTS
) -> pd.DataFrame:
    """The `limit` stuck tenants with the most seats (scoped for an account manager).

    Columns: external_id, name, tier, region, seats (int), account_manager, reason, since (datetime).
    """
    on_track = CurrentState.tenant_id == Tenant.id
    stuck = scoped(
        select(CurrentState.tenant_id).where(
            on_track, CurrentState.track_code == track,
            CurrentState.stage_code.in_(_stuck_stages(session, track, as_of)),
        ),
        actor, CurrentState.account_manager,
    )
    # Walk tenants from the largest down (the seats index) and stop at `limit` stuck ones,
    # instead of joining and sorting every stuck tenant.
    top = (
        select(Tenant.id).where(stuck.exists())
        .order_by(Tenant.seats.desc(), Tenant.external_id).limit(limit).subquery()
    )
    stmt = (
        select(Tenant.external_id, Tenant.name, Tenant.tier, Tenant.region, Tenant.seats,
               Tenant.account_manager, _reason(CurrentState.stage_code), CurrentState.since)
        .join(top, top.c.id == Tenant.id)
        .join(CurrentState, on_track & (CurrentState.track_code == track))
        .order_by(Tenant.seats.desc(), Tenant.external_id)
    )
    rows = session.execute(scoped(stmt, actor, CurrentState.account_manager)).all()
    return pd.DataFrame(
        [tuple(r) for r in rows],
        columns=["external_id", "name", "tier", "region", "seats", "account_manager", "reason", "since"],
    )


def top_risks(*, session: Session, actor: Actor, as_of: date, program: str | None = None) -> TopRisks:
    """The program's overdue plan items and its encryption track's stuck tenants (by tier, largest)."""
    program = program or default_program(session=session)
    track = program_track(session=session, kind=ENCRYPTION, program=program)
    if track is None:
        by_tier = pd.DataFrame(columns=["tier", "tier_name", *STUCK_COLUMNS, "total"])
        largest = pd.DataFrame(
            columns=["external_id", "name", "tier", "region", "seats", "account_manager", "reason", "since"]
        )
    else:
        by_tier = stuck_tenants_by_tier(session=session, actor=actor, as_of=as_of, track=track)
        largest = largest_stuck_tenants(session=session, actor=actor, as_of=as_of, track=track)
    overdue = overdue_plan_items(session=session, as_of=as_of, program=program)
    return TopRisks(as_of, overdue, by_tier, largest)
