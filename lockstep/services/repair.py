"""Rebuilding current state and the kept counts from the rollout events (`db rebuild-state`).

The events are the facts; current_state, stage_counts (and its rollups stage_totals and
manager_counts) and feature_counts are kept from them with every write. Should the kept
tables ever disagree (a bug, a hand edit, a restore of one table), this replays every
(tenant, track)'s events with the same rules as record_event and recounts. A dry run only
reports; the real run writes the differences and one audit entry, in one transaction
holding the rollout gate exclusively (no event or import runs meanwhile).

Tenants are read in id ranges of BATCH, with their events and state rows, so memory follows
the batch, not the database.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from itertools import groupby

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.orm import Session

from lockstep.models import (
    CurrentState,
    FeatureCount,
    ManagerCount,
    RolloutEvent,
    StageCount,
    StageTotal,
    Tenant,
    TenantFeature,
)
from lockstep.permissions import Actor, require
from lockstep.rollout_rules import RuleViolation, replay
from lockstep.services import audit
from lockstep.services.locks import hold_rollout_gate
from lockstep.services.rollout import load_track_rules, rebuild_stage_counts

BATCH = 20_000
SHOWN = 50  # differences kept to show (all are counted)
_STATE_FIELDS = (
    "stage_code",
    "reached_stage_code",
    "since",
    "last_event_id",
    "tier",
    "region",
    "account_manager",
)


@dataclass(frozen=True)
class StateDifference:
    """One (tenant, track) whose stored state is not what its events lead to (None: no row)."""

    tenant: str
    track: str
    stored: str | None
    rebuilt: str | None

    def __str__(self) -> str:
        stored, rebuilt = self.stored or "no row", self.rebuilt or "no row"
        return f"{self.tenant} {self.track}: stored {stored} -> rebuilt {rebuilt}"


@dataclass(frozen=True)
class CountDifference:
    """One kept count that differs from the recount."""

    table: str
    key: tuple
    stored: int
    rebuilt: int

    def __str__(self) -> str:
        return f"{self.table} {'/'.join(map(str, self.key))}: stored {self.stored} -> rebuilt {self.rebuilt}"


@dataclass
class RebuildResult:
    """What rebuild_state found (and, unless a dry run, fixed)."""

    applied: bool
    states_checked: int = 0
    state_changes: int = 0
    count_changes: int = 0
    broken: list[str] = field(default_factory=list)  # (tenant, track)s whose events break the rules
    states: list[StateDifference] = field(default_factory=list)
    counts: list[CountDifference] = field(default_factory=list)

    @property
    def differences(self) -> int:
        """State rows plus count rows that differ."""
        return self.state_changes + self.count_changes

    def lines(self) -> list[str]:
        """A report: the differences (the first SHOWN of each kind) and the totals."""
        out = [f"  {d}" for d in self.states]
        if self.state_changes > len(self.states):
            out.append(f"  ... and {self.state_changes - len(self.states)} more state rows")
        out += [f"  {d}" for d in self.counts]
        if self.count_changes > len(self.counts):
            out.append(f"  ... and {self.count_changes - len(self.counts)} more count rows")
        out += [f"  events break the rules, state left as stored: {b}" for b in self.broken[:SHOWN]]
        verb = "rebuilt" if self.applied else "would change"
        out.append(
            f"{self.states_checked} state rows checked; {verb} {self.state_changes} state rows and "
            f"{self.count_changes} count rows"
        )
        return out


def _describe(row: dict | None) -> str | None:
    if row is None:
        return None
    since = row["since"].strftime("%Y-%m-%d %H:%M") if isinstance(row["since"], datetime) else row["since"]
    reached, event = row["reached_stage_code"], row["last_event_id"]
    return f"{row['stage_code']} (reached {reached}, since {since}, event {event})"


def rebuild_state(*, session: Session, actor: Actor, dry_run: bool) -> RebuildResult:
    """Recompute current_state and the kept counts from the events; write unless `dry_run`."""
    require(actor, "state.rebuild")
    hold_rollout_gate(session, exclusive=True)
    rules = load_track_rules(session)
    result = RebuildResult(applied=not dry_run)
    stage_recount: Counter = Counter()
    feature_recount: Counter = Counter()
    last_id = 0
    while True:
        tenants = session.execute(
            select(
                Tenant.id,
                Tenant.external_id,
                Tenant.tier,
                Tenant.region,
                Tenant.account_manager,
                Tenant.created_at,
            )
            .where(Tenant.id > last_id)
            .order_by(Tenant.id)
            .limit(BATCH)
        ).all()
        if not tenants:
            break
        first, last_id = tenants[0].id, tenants[-1].id
        in_range = (first, last_id)
        events = _events(session, in_range)
        stored = _stored(session, in_range)
        features = _features(session, in_range)
        tracks_with_events: dict[int, set[str]] = {}
        for tenant_id, track in events:
            tracks_with_events.setdefault(tenant_id, set()).add(track)
        for t in tenants:
            tracks = {k for k, r in rules.items() if t.tier in r.tiers} | tracks_with_events.get(t.id, set())
            for track in sorted(tracks):
                result.states_checked += 1
                history = events.get((t.id, track), [])
                try:
                    state = replay(rules[track], [(at, s) for at, s, _, _ in history], since=t.created_at)
                except RuleViolation as exc:
                    result.broken.append(f"{t.external_id} {track}: {exc}")
                    row = stored.get((t.id, track))
                    if row is not None:
                        _tally(stage_recount, feature_recount, row, features.get(t.id, ()))
                    continue
                want = {
                    "stage_code": state.stage,
                    "reached_stage_code": state.reached,
                    "since": state.since,
                    "last_event_id": history[-1][2] if history else None,
                    "tier": t.tier,
                    "region": t.region,
                    "account_manager": t.account_manager,
                }
                _tally(stage_recount, feature_recount, {**want, "track_code": track}, features.get(t.id, ()))
                have = stored.pop((t.id, track), None)
                if have is not None and all(have[f] == want[f] for f in _STATE_FIELDS):
                    continue
                _note(result, StateDifference(t.external_id, track, _describe(have), _describe(want)))
                if not dry_run:
                    _put(
                        session, t.id, track, want, history[-1][3] if history else "", exists=have is not None
                    )
        # Rows left: (tenant, track)s without events whose tier the track does not cover.
        external = {t.id: t.external_id for t in tenants} if stored else {}
        for (tenant_id, track), have in stored.items():
            _note(result, StateDifference(external[tenant_id], track, _describe(have), None))
            if not dry_run:
                session.execute(
                    delete(CurrentState).where(
                        CurrentState.tenant_id == tenant_id, CurrentState.track_code == track
                    )
                )
    _compare_counts(session, result, stage_recount, feature_recount)
    if not dry_run:
        if result.count_changes or result.state_changes:
            rebuild_stage_counts(session)
        audit.append(
            session,
            actor,
            "state.rebuild",
            "database",
            "current_state",
            before={"state_rows": result.state_changes, "count_rows": result.count_changes},
            after={
                "states_checked": result.states_checked,
                "states": [str(d) for d in result.states],
                "counts": [str(d) for d in result.counts],
                "broken": result.broken[:SHOWN],
            },
        )
    return result


def _note(result: RebuildResult, diff: StateDifference) -> None:
    result.state_changes += 1
    if len(result.states) < SHOWN:
        result.states.append(diff)


def _events(session: Session, in_range: tuple[int, int]) -> dict[tuple[int, str], list[tuple]]:
    """(tenant id, track) -> [(occurred_at, stage, event id, note)] in time then id order."""
    rows = session.execute(
        select(
            RolloutEvent.tenant_id,
            RolloutEvent.track_code,
            RolloutEvent.occurred_at,
            RolloutEvent.stage_code,
            RolloutEvent.id,
            RolloutEvent.note,
        )
        .where(RolloutEvent.tenant_id.between(*in_range))
        .order_by(RolloutEvent.tenant_id, RolloutEvent.track_code, RolloutEvent.occurred_at, RolloutEvent.id)
    ).all()
    return {key: [r[2:] for r in group] for key, group in groupby(rows, key=lambda r: (r[0], r[1]))}


def _stored(session: Session, in_range: tuple[int, int]) -> dict[tuple[int, str], dict]:
    rows = session.execute(
        select(
            CurrentState.tenant_id,
            CurrentState.track_code,
            *(getattr(CurrentState, f) for f in _STATE_FIELDS),
        ).where(CurrentState.tenant_id.between(*in_range))
    ).all()
    return {(r[0], r[1]): dict(zip(_STATE_FIELDS, r[2:], strict=True)) for r in rows}


def _features(session: Session, in_range: tuple[int, int]) -> dict[int, list[str]]:
    found: dict[int, list[str]] = {}
    for tenant_id, feature in session.execute(
        select(TenantFeature.tenant_id, TenantFeature.feature).where(
            TenantFeature.tenant_id.between(*in_range)
        )
    ):
        found.setdefault(tenant_id, []).append(feature)
    return found


def _tally(stages: Counter, features: Counter, row: dict, tenant_features) -> None:
    stages[(row["track_code"], row["stage_code"], row["tier"], row["region"], row["account_manager"])] += 1
    for feature in tenant_features:
        features[(row["track_code"], row["stage_code"], feature, row["account_manager"])] += 1


def _put(session: Session, tenant_id: int, track: str, want: dict, note: str, *, exists: bool) -> None:
    if exists:
        session.execute(
            update(CurrentState)
            .where(CurrentState.tenant_id == tenant_id, CurrentState.track_code == track)
            .values(**want, note=note)
        )
    else:
        session.execute(insert(CurrentState).values(tenant_id=tenant_id, track_code=track, **want, note=note))


def _compare_counts(session: Session, result: RebuildResult, stages: Counter, features: Counter) -> None:
    # The rollups of stage_counts (services/counts.py), recounted from the same tally.
    totals: Counter = Counter()
    managers: Counter = Counter()
    for (track, stage, tier, region, manager), n in stages.items():
        totals[(track, stage, tier, region)] += n
        managers[(manager, track, stage)] += n
    for name, model, recount, key in (
        (
            "stage_counts",
            StageCount,
            stages,
            ("track_code", "stage_code", "tier", "region", "account_manager"),
        ),
        (
            "feature_counts",
            FeatureCount,
            features,
            ("track_code", "stage_code", "feature", "account_manager"),
        ),
        ("stage_totals", StageTotal, totals, ("track_code", "stage_code", "tier", "region")),
        ("manager_counts", ManagerCount, managers, ("account_manager", "track_code", "stage_code")),
    ):
        columns = [getattr(model, k) for k in key]
        kept = {
            tuple(r[:-1]): r[-1]
            for r in session.execute(select(*columns, func.sum(model.n)).group_by(*columns))
        }
        for k in sorted(kept.keys() | recount.keys()):
            if kept.get(k, 0) != recount.get(k, 0):
                result.count_changes += 1
                if len(result.counts) < SHOWN:
                    result.counts.append(CountDifference(name, k, int(kept.get(k, 0)), recount.get(k, 0)))
