"""Sync a validated plan into the database, idempotently, by stable id.

The YAML owns what was planned (program, tiers, tracks and their stages, workstreams, and
each item's title, owner, workstream, start, due, dependencies, source, uncertain flag).
The database owns what happened to an item (status, percent, comment, done date): a sync
sets those only when it creates the item.

- An item missing from the YAML is retired (`retired_at`), never deleted, so its history
  stays; when it comes back it is restored. Both bump `version` and are written to
  plan_item_updates, like any change of a planned field.
- Every track gets the side stages `blocked` and `rolled_back` (is_side, positions 1000+,
  so ordering by position lists the ordered stages first).
- A stage, track or tier missing from the YAML is deleted only when nothing refers to it
  (events, current state, counts, snapshots, tenants); otherwise the sync refuses with a
  ValidationError naming it, before writing anything. A workstream missing from the YAML is
  kept while retired items still belong to it.
- One audit entry per sync, also when nothing changed, so the log shows who synced when.

Programs: a database holds several programs side by side. A plan file is one program; its
items, workstreams and tracks belong to it (`program_id`), and a sync reads, retires and
removes only its own program's rows, so re-syncing one program leaves the others alone.
Item ids, workstream codes and track codes stay unique across programs (events and imports
name tracks by code): a plan that declares one another program owns is refused, naming the
id and its program, before anything is written. Tiers are shared: a sync upserts the tiers
it declares and removes a missing one only when no other program's track covers it (and
nothing else refers to it).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, delete, func, or_, select
from sqlalchemy.orm import Session

from lockstep.clock import utcnow
from lockstep.db import write_transaction
from lockstep.errors import ValidationError
from lockstep.models import (
    SIDE_STAGES,
    AuditHead,
    CurrentState,
    PlanItem,
    PlanItemUpdate,
    Program,
    RolloutEvent,
    StageCount,
    Tenant,
    Tier,
    Track,
    TrackStage,
    WeeklySnapshot,
    Workstream,
)
from lockstep.permissions import SYSTEM, Actor, require
from lockstep.plan.loader import check_plan, load_plan
from lockstep.plan.schema import ItemSpec, Plan
from lockstep.services import audit

SIDE_STAGE_POSITION = 1000
_SIDE_STAGE_TEXT = {
    "blocked": ("Blocked", "Held back: something the tenant uses or runs stops the next stage."),
    "rolled_back": ("Rolled back", "Moved back a stage after a problem."),
}


@dataclass
class SyncResult:
    """What a sync did to plan items (by id), and to the reference rows ("tier:pro", "stage:e2ee.pilot")."""

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    retired: list[str] = field(default_factory=list)
    restored: list[str] = field(default_factory=list)
    reference_added: list[str] = field(default_factory=list)
    reference_updated: list[str] = field(default_factory=list)
    reference_removed: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        """True when the sync changed anything at all."""
        return any(v for k, v in asdict(self).items() if k != "unchanged")

    def counts(self) -> dict[str, int]:
        """How many ids each list holds."""
        return {k: len(v) for k, v in asdict(self).items()}

    def summary(self) -> str:
        """One line for people, e.g. 'items: 0 added, 1 updated, 27 unchanged, 0 retired, 0 restored; ...'."""
        c = self.counts()
        line = ", ".join(f"{c[k]} {k}" for k in ("added", "updated", "unchanged", "retired", "restored"))
        ref = sum(c[k] for k in ("reference_added", "reference_updated", "reference_removed"))
        return f"items: {line}; tiers/tracks/stages/workstreams: {ref} changed"


def sync_plan(*, session: Session, plan: Plan, actor: Actor) -> SyncResult:
    """Upsert the plan into the database in the caller's transaction and audit it once."""
    require(actor, "plan.sync")
    check_plan(plan)
    _serialise_writers(session)
    result = SyncResult()
    now = utcnow()

    _refuse_foreign_ids(session, plan)
    removals = _removals(session, plan)

    before = _sync_program(session, plan, now, result)
    _sync_tiers(session, plan, result)
    _sync_tracks(session, plan, result)
    _sync_workstreams(session, plan, result)
    counts_before = _sync_items(session, plan, actor, now, result)
    _remove(session, plan, removals, result)

    audit_after = {"counts": result.counts(), **asdict(result)}
    audit.append(
        session,
        actor,
        "plan.sync",
        "plan",
        plan.program.id,
        before={"program": before, **counts_before},
        after=audit_after,
    )
    return result


def sync_plan_file(path: str | Path, *, engine: Engine | None = None, actor: Actor = SYSTEM) -> SyncResult:
    """Load, validate and sync a plan file in one write transaction."""
    require(actor, "plan.sync")
    plan = load_plan(path)
    return write_transaction(
        lambda session: sync_plan(session=session, plan=plan, actor=actor), engine=engine
    )


# --- steps ------------------------------------------------------------------------------


def _serialise_writers(session: Session) -> None:
    # Holding the audit head from the start makes two concurrent syncs on PostgreSQL run one
    # after the other, so the second sees the first's rows instead of failing on a duplicate.
    # SQLite write sessions already begin IMMEDIATE, which does the same.
    session.execute(select(AuditHead.id).where(AuditHead.id == 1).with_for_update())


def _refuse_foreign_ids(session: Session, plan: Plan) -> None:
    """ValidationError when the plan declares an item, workstream or track another program owns."""
    program = plan.program.id
    problems: list[str] = []
    for label, model, key, wanted in (
        ("item", PlanItem, PlanItem.id, [i.id for i in plan.items]),
        ("workstream", Workstream, Workstream.code, [w.id for w in plan.workstreams]),
        ("track", Track, Track.code, [t.id for t in plan.tracks]),
    ):
        owned = dict(
            session.execute(
                select(key, model.program_id).where(key.in_(wanted), model.program_id != program)
            ).all()
        )
        problems += [
            f"{label} {code!r} belongs to program {owned[code]!r}" for code in wanted if code in owned
        ]
    if problems:
        more = f"\n  ... and {len(problems) - 50} more" if len(problems) > 50 else ""
        raise ValidationError(
            f"program {program!r} cannot be synced, nothing was changed: ids are unique across "
            "programs, so give these new ids in this plan:\n  " + "\n  ".join(problems[:50]) + more
        )


def _sync_program(session: Session, plan: Plan, now: datetime, result: SyncResult) -> dict | None:
    spec = plan.program
    row = session.get(Program, spec.id)
    if row is None:
        session.add(
            Program(id=spec.id, name=spec.name, start_date=spec.start, end_date=spec.end, synced_at=now)
        )
        result.reference_added.append(f"program:{spec.id}")
        session.flush()
        return None
    before = {"name": row.name, "start": row.start_date, "end": row.end_date}
    if _assign(row, name=spec.name, start_date=spec.start, end_date=spec.end):
        result.reference_updated.append(f"program:{spec.id}")
    row.synced_at = now
    session.flush()
    return before


def _sync_tiers(session: Session, plan: Plan, result: SyncResult) -> None:
    rows = {t.code: t for t in session.scalars(select(Tier))}
    for position, spec in enumerate(plan.tiers):
        values = {"name": spec.name, "paid": spec.paid, "position": position}
        _upsert(session, rows.get(spec.id), Tier, {"code": spec.id}, values, f"tier:{spec.id}", result)
    session.flush()


def _sync_tracks(session: Session, plan: Plan, result: SyncResult) -> None:
    program = plan.program.id
    rows = {t.code: t for t in session.scalars(select(Track).where(Track.program_id == program))}
    stage_rows = {
        (s.track_code, s.code): s
        for s in session.scalars(
            select(TrackStage)
            .join(Track, Track.code == TrackStage.track_code)
            .where(Track.program_id == program)
        )
    }
    for position, spec in enumerate(plan.tracks):
        values = {
            "program_id": program,
            "name": spec.name,
            "description": spec.description,
            "deadline": spec.deadline,
            "tiers": list(spec.tiers),
            "ready_stage": spec.ready_stage,
            "blocking_features": list(spec.blocking_features),
            "position": position,
        }
        _upsert(session, rows.get(spec.id), Track, {"code": spec.id}, values, f"track:{spec.id}", result)
    session.flush()
    for spec in plan.tracks:
        wanted = [(s.id, s.name, s.description, i, False) for i, s in enumerate(spec.stages)]
        wanted += [
            (code, *_SIDE_STAGE_TEXT[code], SIDE_STAGE_POSITION + i, True)
            for i, code in enumerate(SIDE_STAGES)
        ]
        for code, name, description, position, is_side in wanted:
            values = {"name": name, "description": description, "position": position, "is_side": is_side}
            _upsert(
                session,
                stage_rows.get((spec.id, code)),
                TrackStage,
                {"track_code": spec.id, "code": code},
                values,
                f"stage:{spec.id}.{code}",
                result,
            )
    session.flush()


def _sync_workstreams(session: Session, plan: Plan, result: SyncResult) -> None:
    program = plan.program.id
    rows = {w.code: w for w in session.scalars(select(Workstream).where(Workstream.program_id == program))}
    for spec in plan.workstreams:
        values = {"program_id": program, "name": spec.name, "lead": spec.lead}
        _upsert(
            session, rows.get(spec.id), Workstream, {"code": spec.id}, values, f"workstream:{spec.id}", result
        )
    session.flush()


def _sync_items(session: Session, plan: Plan, actor: Actor, now: datetime, result: SyncResult) -> dict:
    # Locked so a concurrent edit in the app cannot slip between our read and our version bump.
    rows = {
        i.id: i
        for i in session.scalars(
            select(PlanItem).where(PlanItem.program_id == plan.program.id).with_for_update()
        )
    }
    counts_before = {
        "active_items": sum(1 for r in rows.values() if r.retired_at is None),
        "retired_items": sum(1 for r in rows.values() if r.retired_at is not None),
    }
    wanted = {spec.id for spec in plan.items}
    for spec in plan.items:
        row = rows.get(spec.id)
        planned = _planned(spec)
        if row is None:
            session.add(
                PlanItem(
                    id=spec.id,
                    program_id=plan.program.id,
                    **planned,
                    status=spec.initial_status,
                    percent=spec.initial_percent,
                    comment="",
                    done_date=spec.done,
                    retired_at=None,
                    version=1,
                    created_at=now,
                    updated_at=now,
                    updated_by=actor.email,
                )
            )
            result.added.append(spec.id)
            continue
        changes = {
            name: [_plain(getattr(row, name)), _plain(value)]
            for name, value in planned.items()
            if getattr(row, name) != value
        }
        restoring = row.retired_at is not None
        if restoring:
            changes["retired_at"] = [_plain(row.retired_at), None]
        if not changes:
            result.unchanged.append(spec.id)
            continue
        _assign(row, **planned, retired_at=None)
        _record(session, row, changes, actor, now)
        (result.restored if restoring else result.updated).append(spec.id)
    for item_id, row in rows.items():
        if item_id not in wanted and row.retired_at is None:
            _record(session, row, {"retired_at": [None, _plain(now)]}, actor, now)
            row.retired_at = now
            result.retired.append(item_id)
    session.flush()
    return counts_before


def _planned(spec: ItemSpec) -> dict[str, Any]:
    return {
        "title": spec.title,
        "owner": spec.owner,
        "workstream_code": spec.workstream,
        "planned_start": spec.start,
        "due_date": spec.due,
        "depends_on": list(spec.depends_on),
        "source": spec.source_text,
        "uncertain": spec.uncertain,
    }


def _record(session: Session, row: PlanItem, changes: dict, actor: Actor, now: datetime) -> None:
    row.version += 1
    row.updated_at, row.updated_by = now, actor.email
    session.add(
        PlanItemUpdate(
            item_id=row.id, version=row.version, changed_at=now, changed_by=actor.email, changes=changes
        )
    )


# --- removals ---------------------------------------------------------------------------


@dataclass
class _Removals:
    stages: list[tuple[str, str]] = field(default_factory=list)
    tracks: list[str] = field(default_factory=list)
    tiers: list[str] = field(default_factory=list)


def _removals(session: Session, plan: Plan) -> _Removals:
    """What disappeared from the YAML; ValidationError if any of it is still referred to."""
    out = _Removals()
    problems: list[str] = []
    program = plan.program.id
    wanted_tracks = {t.id: set(t.stage_ids) | set(SIDE_STAGES) for t in plan.tracks}
    for track_code in session.scalars(select(Track.code).where(Track.program_id == program)):
        if track_code not in wanted_tracks:
            users = _users(session, track=track_code)
            if users:
                problems.append(
                    f"track {track_code!r} is no longer in the plan but {users} refer to it; "
                    "put it back (its name and stages may change)"
                )
            out.tracks.append(track_code)
    for track_code, code in session.execute(
        select(TrackStage.track_code, TrackStage.code)
        .join(Track, Track.code == TrackStage.track_code)
        .where(Track.program_id == program)
    ):
        if track_code in wanted_tracks and code not in wanted_tracks[track_code]:
            users = _users(session, track=track_code, stage=code)
            if users:
                problems.append(
                    f"track {track_code!r}, stage {code!r} is no longer in the plan but {users} "
                    "refer to it; put it back (its name, description and order may change)"
                )
            out.stages.append((track_code, code))
    wanted_tiers = {t.id for t in plan.tiers}
    # Tiers are shared: a tier another program's track covers stays, whatever this plan says.
    covered_elsewhere = {
        tier
        for tiers in session.scalars(select(Track.tiers).where(Track.program_id != program))
        for tier in tiers
    }
    for tier in session.scalars(select(Tier.code)):
        if tier not in wanted_tiers and tier not in covered_elsewhere:
            users = _users(session, tier=tier)
            if users:
                problems.append(
                    f"tier {tier!r} is no longer in the plan but {users} refer to it; put it back"
                )
            out.tiers.append(tier)
    if problems:
        raise ValidationError("the plan cannot be synced, nothing was changed:\n  " + "\n  ".join(problems))
    return out


def _users(
    session: Session, *, track: str | None = None, stage: str | None = None, tier: str | None = None
) -> str:
    """Which tables still refer to a track, stage or tier, e.g. '12 rollout events, 3 tenants'."""
    if tier is not None:
        checks = [
            (Tenant, Tenant.tier == tier, "tenants"),
            (CurrentState, CurrentState.tier == tier, "current states"),
            (StageCount, StageCount.tier == tier, "stage counts"),
            (WeeklySnapshot, WeeklySnapshot.tier == tier, "weekly snapshot rows"),
        ]
    else:

        def on(track_col, stage_col):
            return track_col == track if stage is None else (track_col == track) & (stage_col == stage)

        current = or_(
            on(CurrentState.track_code, CurrentState.stage_code),
            on(CurrentState.track_code, CurrentState.reached_stage_code),
        )
        checks = [
            (RolloutEvent, on(RolloutEvent.track_code, RolloutEvent.stage_code), "rollout events"),
            (CurrentState, current, "current states"),
            (StageCount, on(StageCount.track_code, StageCount.stage_code), "stage counts"),
            (
                WeeklySnapshot,
                on(WeeklySnapshot.track_code, WeeklySnapshot.stage_code),
                "weekly snapshot rows",
            ),
        ]
    found = []
    for model, where, label in checks:
        n = session.scalar(select(func.count()).select_from(model).where(where))
        if n:
            found.append(f"{n} {label}")
    return ", ".join(found)


def _remove(session: Session, plan: Plan, removals: _Removals, result: SyncResult) -> None:
    for track_code, code in removals.stages:
        session.execute(
            delete(TrackStage).where(TrackStage.track_code == track_code, TrackStage.code == code)
        )
        result.reference_removed.append(f"stage:{track_code}.{code}")
    for track_code in removals.tracks:
        session.execute(delete(TrackStage).where(TrackStage.track_code == track_code))
        session.execute(delete(Track).where(Track.code == track_code))
        result.reference_removed.append(f"track:{track_code}")
    for tier in removals.tiers:
        session.execute(delete(Tier).where(Tier.code == tier))
        result.reference_removed.append(f"tier:{tier}")
    # Retired items keep their workstream, so a workstream goes only once no item belongs to it.
    wanted = {w.id for w in plan.workstreams}
    program = plan.program.id
    in_use = set(session.scalars(select(PlanItem.workstream_code).distinct()))
    for code in session.scalars(select(Workstream.code).where(Workstream.program_id == program)).all():
        if code not in wanted and code not in in_use:
            session.execute(delete(Workstream).where(Workstream.code == code))
            result.reference_removed.append(f"workstream:{code}")
    session.flush()


# --- helpers ----------------------------------------------------------------------------


def _upsert(
    session: Session, row: Any, model: type, key: dict, values: dict, label: str, result: SyncResult
) -> None:
    if row is None:
        session.add(model(**key, **values))
        result.reference_added.append(label)
    elif _assign(row, **values):
        result.reference_updated.append(label)


def _assign(row: Any, **values: Any) -> bool:
    """Set the attributes that differ; True when any did."""
    changed = False
    for name, value in values.items():
        if getattr(row, name) != value:
            setattr(row, name, value)
            changed = True
    return changed


def _plain(value: Any) -> Any:
    """A JSON-ready value for plan_item_updates.changes (dates as ISO text)."""
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, list):
        return list(value)
    return value
