"""Recording rollout events: validate, append, and move current state and counts with them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, delete, func, insert, select, update
from sqlalchemy.orm import Session

from lockstep.clock import utcnow, week_end
from lockstep.errors import NotFoundError, ValidationError
from lockstep.models import (
    CurrentState,
    FeatureCount,
    RolloutEvent,
    SnapshotWeek,
    StageCount,
    Tenant,
    TenantFeature,
    Track,
    TrackStage,
    WeeklySnapshot,
)
from lockstep.permissions import Actor, require
from lockstep.rollout_rules import RuleViolation, State, TrackRules, apply_event, initial_state, replay
from lockstep.services import audit
from lockstep.services.counts import rebuild_rollups, roll_up
from lockstep.services.locks import hold_rollout_gate, lock_tenant
from lockstep.sqlutil import add_to_counts

# Clocks drift; an event a minute "in the future" is a clock, not a forgery.
FUTURE_TOLERANCE = timedelta(minutes=5)


def load_track_rules(session: Session) -> dict[str, TrackRules]:
    """Every track's rules, keyed by track code."""
    tracks = session.scalars(select(Track).order_by(Track.position)).all()
    stages = session.execute(
        select(TrackStage.track_code, TrackStage.code)
        .where(TrackStage.is_side.is_(False))
        .order_by(TrackStage.track_code, TrackStage.position)
    ).all()
    ordered: dict[str, list[str]] = {}
    for track_code, code in stages:
        ordered.setdefault(track_code, []).append(code)
    return {t.code: TrackRules(t.code, tuple(ordered.get(t.code, ())), frozenset(t.tiers)) for t in tracks}


@dataclass(frozen=True)
class RecordedEvent:
    """What record_event did: the event id and the tenant's state before and after."""

    event_id: int
    tenant_external_id: str
    track: str
    before: str
    after: str
    back_dated: bool


def record_event(
    *,
    session: Session,
    actor: Actor,
    tenant_external_id: str,
    track: str,
    stage: str,
    occurred_at: datetime,
    source: str = "manual",
    note: str = "",
) -> RecordedEvent:
    """Record that a tenant reached a stage of a track; state, counts and audit move with it."""
    require(actor, "event.record")
    rules = load_track_rules(session).get(track)
    if rules is None:
        raise ValidationError(f"unknown track '{track}'")
    if not rules.has_stage(stage):
        raise ValidationError(
            f"track '{track}' has no stage '{stage}' (stages: {', '.join(rules.stages + rules.side_stages)})"
        )
    if occurred_at > utcnow() + FUTURE_TOLERANCE:
        raise ValidationError(f"time {occurred_at:%Y-%m-%d %H:%M} is in the future")
    # Locks first, reads after (see lockstep.services.locks): under READ COMMITTED a history
    # read before the tenant's lock can miss an event another writer is committing, and the
    # state replayed from it would then be stored over that writer's.
    hold_rollout_gate(session, exclusive=False)
    tenant = lock_tenant(session, tenant_external_id)
    if tenant is None:
        raise NotFoundError(f"no tenant with id '{tenant_external_id}'")
    if tenant.tier not in rules.tiers:
        raise ValidationError(
            f"tenant '{tenant_external_id}' is on tier '{tenant.tier}', which track "
            f"'{track}' does not cover (covers: {', '.join(sorted(rules.tiers))})"
        )
    current = session.get(CurrentState, (tenant.id, track), with_for_update=True, populate_existing=True)

    history = session.execute(
        select(RolloutEvent.occurred_at, RolloutEvent.stage_code)
        .where(RolloutEvent.tenant_id == tenant.id, RolloutEvent.track_code == track)
        .order_by(RolloutEvent.occurred_at, RolloutEvent.id)
    ).all()
    if any(at == occurred_at and s == stage for at, s in history):
        raise ValidationError(
            f"tenant '{tenant_external_id}' already has '{stage}' on '{track}' "
            f"at {occurred_at:%Y-%m-%d %H:%M}"
        )
    back_dated = bool(history) and occurred_at < history[-1][0]
    timeline = sorted([*history, (occurred_at, stage)], key=lambda e: e[0])
    try:
        new_state = replay(rules, [(at, s) for at, s in timeline], since=tenant.created_at)
    except RuleViolation as exc:
        raise ValidationError(f"tenant '{tenant_external_id}': {exc}") from None

    old_stage = current.stage_code if current else None
    if back_dated or closed_week_after(session, occurred_at):
        _restate_closed_weeks(session, tenant, rules, occurred_at, stage)

    event_id = session.execute(
        insert(RolloutEvent)
        .values(
            tenant_id=tenant.id,
            track_code=track,
            stage_code=stage,
            occurred_at=occurred_at,
            recorded_at=utcnow(),
            actor=actor.email,
            source=source,
            note=note,
        )
        .returning(RolloutEvent.id)
    ).scalar_one()
    last_event_id = event_id if not back_dated else current.last_event_id if current else event_id
    _put_state(session, tenant, track, new_state, last_event_id, note if not back_dated else None)
    if old_stage != new_state.stage:
        key = {
            "track_code": track, "tier": tenant.tier, "region": tenant.region,
            "account_manager": tenant.account_manager,
        }
        moves = [({**key, "stage_code": new_state.stage}, 1)]
        if old_stage is not None:
            moves.append(({**key, "stage_code": old_stage}, -1))
        add_to_counts(session, StageCount.__table__, moves, "n")
        _move_feature_counts(session, tenant, track, old_stage, new_state.stage)
        roll_up(session, moves)

    audit.append(
        session,
        actor,
        "rollout.record_event",
        "tenant",
        tenant_external_id,
        before={"track": track, "stage": old_stage},
        after={
            "track": track,
            "stage": new_state.stage,
            "event": stage,
            "event_id": event_id,
            "occurred_at": occurred_at,
            "source": source,
            "note": note,
        },
    )
    return RecordedEvent(
        event_id, tenant_external_id, track, old_stage or rules.initial, new_state.stage, back_dated
    )


def _move_feature_counts(
    session: Session, tenant: Tenant, track: str, old_stage: str | None, new_stage: str
) -> None:
    """Move each of the tenant's features from `old_stage` to `new_stage` in feature_counts."""
    features = select(TenantFeature.feature).where(TenantFeature.tenant_id == tenant.id)
    moves = []
    for feature in session.scalars(features).all():
        key = {"track_code": track, "feature": feature, "account_manager": tenant.account_manager}
        if old_stage is not None:
            moves.append(({**key, "stage_code": old_stage}, -1))
        moves.append(({**key, "stage_code": new_stage}, 1))
    add_to_counts(session, FeatureCount.__table__, moves, "n")


def _put_state(
    session: Session, tenant: Tenant, track: str, state: State, last_event_id: int | None, note: str | None
) -> None:
    values = {
        "stage_code": state.stage,
        "reached_stage_code": state.reached,
        "since": state.since,
        "last_event_id": last_event_id,
    }
    if note is not None:
        values["note"] = note
    updated = session.execute(
        update(CurrentState)
        .where(CurrentState.tenant_id == tenant.id, CurrentState.track_code == track)
        .values(**values)
    ).rowcount
    if not updated:
        session.execute(
            insert(CurrentState).values(
                tenant_id=tenant.id,
                track_code=track,
                tier=tenant.tier,
                region=tenant.region,
                account_manager=tenant.account_manager,
                note=note or "",
                **{k: v for k, v in values.items() if k != "note"},
            )
        )


def closed_week_after(session: Session, at: datetime) -> bool:
    """True when some closed week ends after `at` (so an event at `at` restates it)."""
    latest = session.scalar(select(func.max(SnapshotWeek.week_start)))
    return latest is not None and week_end(latest) > at


def _restate_closed_weeks(
    session: Session, tenant: Tenant, rules: TrackRules, at: datetime, stage: str
) -> None:
    """Move n_current of each closed week whose as-of count a new event at `at` changes.

    Called before the event is inserted. A week counts the (tenant, track) as the back-fill
    does (lockstep.services.snapshots): from the week its tenant was added or had its first
    event on the track, whichever is earlier, in the stage of its latest event before the
    week's end. So a week before a late tenant existed gains it rather than losing it from a
    first stage it was never counted in.
    """
    # Closed weeks are per program: only the weeks of the program the track belongs to.
    program = session.scalar(select(Track.program_id).where(Track.code == rules.code))
    weeks = [
        monday
        for monday in session.scalars(
            select(SnapshotWeek.week_start)
            .where(SnapshotWeek.program_id == program)
            .order_by(SnapshotWeek.week_start)
        )
        if week_end(monday) > at
    ]
    if not weeks:
        return
    history = session.execute(
        select(RolloutEvent.occurred_at, RolloutEvent.stage_code)
        .where(RolloutEvent.tenant_id == tenant.id, RolloutEvent.track_code == rules.code)
        .order_by(RolloutEvent.occurred_at, RolloutEvent.id)
    ).all()
    # The new event gets the highest id, so it is the last of the events at its instant.
    with_event = sorted([*history, (at, stage)], key=lambda e: e[0])
    for monday in weeks:
        end = week_end(monday)
        before = stage_at_week_end(history, tenant.created_at, end, rules.initial)
        after = stage_at_week_end(with_event, tenant.created_at, end, rules.initial)
        if before == after:
            continue
        key = {"program_id": program, "week_start": monday, "track_code": rules.code, "tier": tenant.tier,
               "region": tenant.region}
        moves = [({**key, "stage_code": after}, 1)]
        if before is not None:
            _ensure_snapshot_row(session, {**key, "stage_code": before})
            moves.append(({**key, "stage_code": before}, -1))
        add_to_counts(session, WeeklySnapshot.__table__, moves, "n_current")


def stage_at_week_end(
    events: list[tuple[datetime, str]], created_at: datetime, end: datetime, initial: str
) -> str | None:
    """The stage a week ending at `end` counts a (tenant, track) in; None when it was not there yet.

    `events` are (occurred_at, stage) in (occurred_at, id) order.
    """
    reached = [s for a, s in events if a < end]
    if reached:
        return reached[-1]
    return initial if created_at < end else None


def _ensure_snapshot_row(session: Session, key: dict) -> None:
    exists = session.scalar(
        select(func.count())
        .select_from(WeeklySnapshot)
        .where(and_(*(getattr(WeeklySnapshot, k) == v for k, v in key.items())))
    )
    if not exists:
        session.execute(insert(WeeklySnapshot).values(**key, n_reported=0, n_current=0))


def recompute_state(session: Session, tenant_id: int, track: str) -> State:
    """The state a tenant's events lead to, recomputed from the event table alone."""
    rules = load_track_rules(session)[track]
    tenant = session.get(Tenant, tenant_id)
    events = session.execute(
        select(RolloutEvent.occurred_at, RolloutEvent.stage_code)
        .where(RolloutEvent.tenant_id == tenant_id, RolloutEvent.track_code == track)
        .order_by(RolloutEvent.occurred_at, RolloutEvent.id)
    ).all()
    return replay(rules, [(a, s) for a, s in events], since=tenant.created_at if tenant else None)


def rebuild_stage_counts(session: Session) -> None:
    """Recount stage_counts (and its rollups) and feature_counts from current_state (after bulk loads)."""
    session.execute(delete(StageCount))
    keys = [
        CurrentState.track_code, CurrentState.stage_code, CurrentState.tier, CurrentState.region,
        CurrentState.account_manager,
    ]
    grouped = select(*keys, func.count()).group_by(*keys)
    session.execute(
        insert(StageCount).from_select(
            ["track_code", "stage_code", "tier", "region", "account_manager", "n"], grouped
        )
    )
    session.execute(delete(FeatureCount))
    keys = [
        CurrentState.track_code, CurrentState.stage_code, TenantFeature.feature, CurrentState.account_manager,
    ]
    grouped = (
        select(*keys, func.count())
        .join(TenantFeature, TenantFeature.tenant_id == CurrentState.tenant_id)
        .group_by(*keys)
    )
    columns = ["track_code", "stage_code", "feature", "account_manager", "n"]
    session.execute(insert(FeatureCount).from_select(columns, grouped))
    rebuild_rollups(session)


__all__ = [
    "load_track_rules",
    "record_event",
    "recompute_state",
    "rebuild_stage_counts",
    "RecordedEvent",
    "initial_state",
    "apply_event",
    "closed_week_after",
    "stage_at_week_end",
]
