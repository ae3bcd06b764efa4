"""load_demo: one transaction through the real import path, on a synced plan, into an empty database."""

from __future__ import annotations

from collections import Counter

import pytest
from sqlalchemy import func, select

from lockstep import demo
from lockstep.config import ROOT
from lockstep.db import read_session
from lockstep.demo import generate_demo, load_demo
from lockstep.errors import LockstepError, PermissionDenied
from lockstep.models import AuditEntry, CurrentState, RolloutEvent, StageCount, Tenant, User
from lockstep.permissions import SYSTEM, Actor
from lockstep.plan import sync_plan_file
from lockstep.rollout_rules import TrackRules, replay
from lockstep.services import audit
from lockstep.services.users import verify_password

N, SEED = 300, 7
PLAN = ROOT / "plan" / "90-day-plan.yaml"


pytestmark = pytest.mark.usefixtures("cheap_hashing")  # tests/db/conftest.py


def _count(session, model) -> int:
    return session.scalar(select(func.count()).select_from(model))


@pytest.fixture
def loaded(engine):
    """The shipped plan synced and the demo loaded; returns load_demo's summary."""
    sync_plan_file(PLAN, engine=engine)
    return load_demo(engine=engine, tenants=N, seed=SEED, actor=SYSTEM)


def test_demo_loads_tenants_events_and_users(engine, loaded, monkeypatch):
    expected = generate_demo(tenants=N, seed=SEED)
    assert loaded["tenants"] == N and loaded["events"] == len(expected.events)
    assert loaded["users_added"] == len(demo.DEMO_USERS)
    with read_session(engine) as s:
        assert _count(s, Tenant) == N
        assert _count(s, RolloutEvent) == len(expected.events)
        users = {u.email: u for u in s.scalars(select(User))}
        assert set(users) == {email for email, _, _ in demo.DEMO_USERS}
        assert {u.role for u in users.values()} == {"admin", "security_lead", "executive", "account_manager"}
        for email, _ in demo.ACCOUNT_MANAGERS:
            assert users[email].role == "account_manager"
        assert verify_password(users["admin@lockstep.example"].password_hash, demo.DEFAULT_DEMO_PASSWORD)
        assert audit.verify(s).ok


def test_current_state_has_one_row_per_covered_tenant_and_track(engine, loaded):
    expected = generate_demo(tenants=N, seed=SEED)
    paid = int(expected.tenants["tier"].isin(demo.PAID_TIERS).sum())
    with read_session(engine) as s:
        per_track = select(CurrentState.track_code, func.count()).group_by(CurrentState.track_code)
        assert dict(s.execute(per_track).all()) == {"encryption": N, "e2ee": paid}
        assert s.scalar(select(func.sum(StageCount.n))) == _count(s, CurrentState)
        by_stage = Counter(
            {
                (t, st): n
                for t, st, n in s.execute(
                    select(CurrentState.track_code, CurrentState.stage_code, func.count()).group_by(
                        CurrentState.track_code, CurrentState.stage_code
                    )
                )
            }
        )
        counted = Counter()
        for t, st, n in s.execute(select(StageCount.track_code, StageCount.stage_code, StageCount.n)):
            counted[(t, st)] += n
        assert +counted == by_stage


def test_current_state_is_what_the_generated_events_replay_to(engine, loaded):
    expected = generate_demo(tenants=N, seed=SEED)
    rules = {t: TrackRules(t, st, frozenset(demo.TRACK_TIERS[t])) for t, st in demo.TRACK_STAGES.items()}
    timelines: dict[tuple[str, str], list] = {}
    ev = expected.events
    for tenant, track, at, stage in zip(
        ev["tenant_id"].astype(str), ev["track"].astype(str), ev["occurred_at"], ev["stage"].astype(str),
        strict=True,
    ):
        timelines.setdefault((tenant, track), []).append((at.to_pydatetime(), stage))
    with read_session(engine) as s:
        stored = {
            (ext, track): stage
            for ext, track, stage in s.execute(
                select(Tenant.external_id, CurrentState.track_code, CurrentState.stage_code).join(
                    Tenant, Tenant.id == CurrentState.tenant_id
                )
            )
        }
    for key, timeline in timelines.items():
        assert stored[key] == replay(rules[key[1]], timeline).stage, key


def test_a_second_load_is_refused_and_changes_nothing(engine, loaded):
    with read_session(engine) as s:
        before = (_count(s, Tenant), _count(s, RolloutEvent), _count(s, AuditEntry))
    with pytest.raises(LockstepError, match="already has 300 tenants"):
        load_demo(engine=engine, tenants=10, seed=1, actor=SYSTEM)
    with read_session(engine) as s:
        assert (_count(s, Tenant), _count(s, RolloutEvent), _count(s, AuditEntry)) == before


def test_load_needs_a_synced_plan(engine):
    with pytest.raises(LockstepError, match="plan is not synced.*plan sync"):
        load_demo(engine=engine, tenants=10, seed=1, actor=SYSTEM)
    with read_session(engine) as s:
        assert _count(s, Tenant) == 0 and _count(s, User) == 0


def test_only_admins_load_demo_data(engine):
    sync_plan_file(PLAN, engine=engine)
    with pytest.raises(PermissionDenied):
        load_demo(engine=engine, tenants=10, seed=1, actor=Actor("exec@lockstep.example", "executive"))


def test_demo_password_comes_from_the_environment(engine, monkeypatch):
    monkeypatch.setenv("LOCKSTEP_DEMO_PASSWORD", "another demo secret")
    sync_plan_file(PLAN, engine=engine)
    load_demo(engine=engine, tenants=20, seed=1, actor=SYSTEM)
    with read_session(engine) as s:
        user = s.scalar(select(User).where(User.email == "dana.lee@lockstep.example"))
        assert verify_password(user.password_hash, "another demo secret")
        assert not verify_password(user.password_hash, demo.DEFAULT_DEMO_PASSWORD)
