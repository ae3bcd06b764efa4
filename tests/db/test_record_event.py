"""record_event: each rejection, and state/counts/audit moving with the event."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest
from sqlalchemy import func, select

from lockstep.clock import utcnow
from lockstep.db import read_session, write_session
from lockstep.errors import NotFoundError, PermissionDenied, ValidationError
from lockstep.models import AuditEntry, CurrentState, RolloutEvent, SnapshotWeek, StageCount, WeeklySnapshot
from lockstep.permissions import Actor
from lockstep.services.rollout import recompute_state, record_event
from tests.builders import PROGRAM_ID, add_tenants, seed_plan

LEAD = Actor("lead@lockstep.test", "security_lead")
EXEC = Actor("exec@lockstep.test", "executive")


@pytest.fixture
def world(engine):
    """Plan plus five tenants: t0-00000 free, t0-00001 pro, ... (tiers cycle)."""
    with write_session(engine) as s:
        seed_plan(s)
        add_tenants(s, 5, seed=0)
    return engine


def _record(
    engine,
    actor=LEAD,
    tenant="t0-00001",
    track="encryption",
    stage="clients_upgraded",
    at=datetime(2020, 4, 28, 9),
    **kw,
):
    with write_session(engine) as s:
        return record_event(
            session=s, actor=actor, tenant_external_id=tenant, track=track, stage=stage, occurred_at=at, **kw
        )


def _counts(engine) -> dict:
    with read_session(engine) as s:
        return {
            (t, st): n
            for t, st, n in s.execute(
                select(StageCount.track_code, StageCount.stage_code, func.sum(StageCount.n)).group_by(
                    StageCount.track_code, StageCount.stage_code
                )
            )
            if n
        }


def _table_sizes(engine) -> tuple[int, int]:
    with read_session(engine) as s:
        return (
            s.scalar(select(func.count()).select_from(RolloutEvent)),
            s.scalar(select(func.count()).select_from(AuditEntry)),
        )


def test_event_moves_state_counts_and_audit_together(world):
    before = _counts(world)
    result = _record(world, note="MDM push done")
    assert (result.before, result.after) == ("legacy_cipher", "clients_upgraded")
    after = _counts(world)
    assert after[("encryption", "legacy_cipher")] == before[("encryption", "legacy_cipher")] - 1
    assert after[("encryption", "clients_upgraded")] == 1
    with read_session(world) as s:
        state = s.scalar(
            select(CurrentState).where(
                CurrentState.track_code == "encryption", CurrentState.last_event_id == result.event_id
            )
        )
        assert (state.stage_code, state.note) == ("clients_upgraded", "MDM push done")
        entry = s.scalar(select(AuditEntry).order_by(AuditEntry.id.desc()).limit(1))
        assert (entry.action, entry.entity_id, entry.actor) == (
            "rollout.record_event",
            "t0-00001",
            LEAD.email,
        )
        assert entry.after["stage"] == "clients_upgraded"


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"stage": "gcm_sometime"}, ValidationError, "track 'encryption' has no stage 'gcm_sometime'"),
        ({"track": "quantum"}, ValidationError, "unknown track 'quantum'"),
        (
            {"tenant": "t0-00000", "track": "e2ee", "stage": "pilot"},
            ValidationError,
            "tenant 't0-00000' is on tier 'free', which track 'e2ee' does not cover",
        ),
        ({"at": utcnow() + timedelta(days=1)}, ValidationError, "is in the future"),
        ({"tenant": "nobody"}, NotFoundError, "no tenant with id 'nobody'"),
        ({"actor": EXEC}, PermissionDenied, "may not event record"),
    ],
)
def test_rejections_write_nothing(world, kwargs, error, message):
    sizes = _table_sizes(world)
    with pytest.raises(error, match=message):
        _record(world, **kwargs)
    assert _table_sizes(world) == sizes


def test_a_step_backwards_needs_an_explicit_rollback(world):
    _record(world, stage="gcm_enabled", at=datetime(2020, 5, 1))
    sizes = _table_sizes(world)
    with pytest.raises(ValidationError, match="needs an explicit 'rolled_back' event"):
        _record(world, stage="clients_upgraded", at=datetime(2020, 5, 2))
    assert _table_sizes(world) == sizes
    back = _record(world, stage="rolled_back", at=datetime(2020, 5, 2), note="room systems failed")
    assert back.after == "rolled_back"
    assert _record(world, stage="gcm_enabled", at=datetime(2020, 5, 3)).after == "gcm_enabled"


def test_back_dated_event_that_breaks_later_history_is_refused(world):
    _record(world, stage="gcm_enabled", at=datetime(2020, 5, 10))
    # A later event exists at gcm_enabled; inserting gcm_enforced before it would make that a step back.
    with pytest.raises(ValidationError, match="before the stage already reached"):
        _record(world, stage="gcm_enforced", at=datetime(2020, 5, 5))


def test_current_state_equals_recomputation_from_events(world):
    for stage, day in (
        ("clients_upgraded", 1),
        ("blocked", 2),
        ("gcm_enabled", 3),
        ("gcm_enforced", 4),
        ("rolled_back", 5),
    ):
        _record(world, stage=stage, at=datetime(2020, 5, day))
    _record(world, tenant="t0-00002", stage="gcm_enabled", at=datetime(2020, 5, 9))
    _record(world, tenant="t0-00002", stage="clients_upgraded", at=datetime(2020, 5, 1))  # back-dated
    with read_session(world) as s:
        for state in s.scalars(select(CurrentState)):
            derived = recompute_state(s, state.tenant_id, state.track_code)
            assert (state.stage_code, state.reached_stage_code) == (derived.stage, derived.reached)


def test_back_dated_event_restates_a_closed_week(world):
    monday = date(2020, 5, 4)
    with write_session(world) as s:
        s.add(SnapshotWeek(program_id=PROGRAM_ID, week_start=monday, closed_at=datetime(2020, 5, 11),
                           closed_by="lead"))
        tenant_region = s.scalar(
            select(CurrentState.region)
            .where(CurrentState.track_code == "encryption")
            .order_by(CurrentState.tenant_id)
            .offset(1)
            .limit(1)
        )
        s.add(
            WeeklySnapshot(
                program_id=PROGRAM_ID,
                week_start=monday,
                track_code="encryption",
                stage_code="legacy_cipher",
                tier="pro",
                region=tenant_region,
                n_reported=1,
                n_current=1,
            )
        )
    _record(world, stage="clients_upgraded", at=datetime(2020, 5, 6))  # inside the closed week
    with read_session(world) as s:
        rows = {
            r.stage_code: (r.n_reported, r.n_current)
            for r in s.scalars(select(WeeklySnapshot).where(WeeklySnapshot.week_start == monday))
        }
    assert rows["legacy_cipher"] == (1, 0)
    assert rows["clients_upgraded"] == (0, 1)
