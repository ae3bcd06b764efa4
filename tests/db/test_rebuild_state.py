"""rebuild_state: current state and the kept counts recomputed from the events; a dry run changes nothing."""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import func, select, update

from lockstep.db import read_session, write_session
from lockstep.errors import PermissionDenied
from lockstep.models import AuditEntry, CurrentState, FeatureCount, StageCount, Tenant
from lockstep.permissions import Actor
from lockstep.services.repair import rebuild_state
from lockstep.services.rollout import record_event
from tests.builders import add_tenants, seed_plan
from tests.db.concurrency_checks import (
    audit_chain_problem,
    counts_disagreeing_with_recount,
    states_disagreeing_with_replay,
)

ADMIN = Actor("admin@lockstep.test", "admin")
LEAD = Actor("lead@lockstep.test", "security_lead")


@pytest.fixture
def world(engine):
    """Ten tenants, a few with events, state and counts kept by record_event."""
    with write_session(engine) as s:
        seed_plan(s)
        add_tenants(s, 10, seed=0)
    for tenant, track, stage, hour in [
        ("t0-00001", "encryption", "clients_upgraded", 9),
        ("t0-00001", "encryption", "gcm_enabled", 10),
        ("t0-00002", "e2ee", "pilot", 9),
        ("t0-00003", "encryption", "blocked", 9),
    ]:
        with write_session(engine) as s:
            record_event(
                session=s,
                actor=LEAD,
                tenant_external_id=tenant,
                track=track,
                stage=stage,
                occurred_at=datetime(2020, 5, 4, hour),
            )
    return engine


def _tenant_id(s, external_id: str) -> int:
    return s.scalar(select(Tenant.id).where(Tenant.external_id == external_id))


def _corrupt(engine) -> None:
    """What the issue saw: a state behind its events, and a count that no longer adds up."""
    with write_session(engine) as s:
        s.execute(
            update(CurrentState)
            .where(
                CurrentState.tenant_id == _tenant_id(s, "t0-00001"), CurrentState.track_code == "encryption"
            )
            .values(stage_code="clients_upgraded", reached_stage_code="clients_upgraded")
        )
        s.execute(update(StageCount).where(StageCount.stage_code == "pilot").values(n=StageCount.n + 5))
        s.execute(update(FeatureCount).values(n=0))


def _snapshot(engine) -> tuple:
    with read_session(engine) as s:
        return (
            sorted(
                tuple(r)
                for r in s.execute(
                    select(
                        CurrentState.tenant_id,
                        CurrentState.track_code,
                        CurrentState.stage_code,
                        CurrentState.reached_stage_code,
                    )
                )
            ),
            sorted(tuple(r) for r in s.execute(select(StageCount.stage_code, StageCount.n))),
            s.scalar(select(func.count()).select_from(AuditEntry)),
        )


def test_a_consistent_database_has_nothing_to_rebuild(world):
    with write_session(world) as s:
        result = rebuild_state(session=s, actor=ADMIN, dry_run=True)
    assert result.differences == 0
    assert result.states_checked == 10 + 8  # every tenant on encryption, the 8 paid ones on e2ee


def test_dry_run_shows_the_differences_and_writes_nothing(world):
    _corrupt(world)
    before = _snapshot(world)
    with write_session(world) as s:
        result = rebuild_state(session=s, actor=ADMIN, dry_run=True)
    assert result.state_changes == 1
    assert [str(d).split(" -> ")[0] for d in result.states] == [
        "t0-00001 encryption: stored clients_upgraded "
        "(reached clients_upgraded, since 2020-05-04 10:00, event 2)"
    ]
    assert str(result.states[0]).split(" -> ")[1].startswith("rebuilt gcm_enabled (reached gcm_enabled")
    assert result.count_changes > 0
    assert any(
        d.table == "stage_counts" and d.key[1] == "pilot" and d.stored == d.rebuilt + 5 for d in result.counts
    )
    assert _snapshot(world) == before


def test_the_real_run_repairs_state_and_counts_and_is_audited(world):
    _corrupt(world)
    with write_session(world) as s:
        result = rebuild_state(session=s, actor=ADMIN, dry_run=False)
    assert result.applied and result.state_changes == 1
    assert states_disagreeing_with_replay(world) == []
    assert counts_disagreeing_with_recount(world) == {}
    with read_session(world) as s:
        entry = s.scalars(select(AuditEntry).order_by(AuditEntry.id.desc()).limit(1)).one()
        assert (entry.action, entry.actor) == ("state.rebuild", ADMIN.email)
        assert entry.before["state_rows"] == 1 and entry.after["states_checked"] == 18
    assert audit_chain_problem(world) == ""
    with write_session(world) as s:
        assert rebuild_state(session=s, actor=ADMIN, dry_run=True).differences == 0


def test_only_an_admin_may_rebuild(world):
    with write_session(world) as s, pytest.raises(PermissionDenied):
        rebuild_state(session=s, actor=LEAD, dry_run=True)
