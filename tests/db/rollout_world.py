"""A hand-built world for the rollout, E2EE and customer query tests.

Sixty tenants whose tier, region, manager, features and story follow from their number,
so a test can work a count out by hand as well as check it with independent SQL. Events
go through `record_event`, the real write path, and one week is closed.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime

from sqlalchemy import text

from lockstep.config import get_settings
from lockstep.db import write_session
from lockstep.models import Program, Tenant, TenantFeature, Tier, Track, TrackStage
from lockstep.permissions import SYSTEM, Actor
from lockstep.services.rollout import record_event
from lockstep.services.snapshots import close_week

AS_OF = date(2020, 5, 20)
MANAGER_A = "a@example.com"
MANAGER_B = "b@example.com"
AM_A = Actor(MANAGER_A, "account_manager")
AM_B = Actor(MANAGER_B, "account_manager")
ADMIN = Actor("admin@example.com", "admin")
N_TENANTS = 60
SPECIAL = {7: "=Equals Labs", 11: "<b>Bold</b> Media", 13: "50% Off_Outlet"}

ENC = ("legacy_cipher", "clients_upgraded", "gcm_enabled", "gcm_enforced")
E2E = ("eligible", "pilot", "enabled")
TIERS = ("free", "pro", "business")


def _d(month: int, day: int, hour: int = 9) -> datetime:
    return datetime(2020, month, day, hour)


# Encryption story by i % 6 (after a legacy_cipher baseline on 2020-04-02).
ENC_STORIES = {
    0: [],
    1: [("clients_upgraded", _d(5, 1))],
    2: [("gcm_enabled", _d(5, 10))],  # skipped clients_upgraded
    3: [("clients_upgraded", _d(4, 28)), ("gcm_enabled", _d(5, 12)), ("gcm_enforced", _d(5, 18))],
    4: [("clients_upgraded", _d(5, 1)), ("blocked", _d(5, 15))],
    5: [("gcm_enabled", _d(5, 2)), ("gcm_enforced", _d(5, 3)), ("rolled_back", _d(5, 19))],
}
# E2EE story for paid tenants by i % 4 (after eligible on 2020-05-01).
E2E_STORIES = {
    0: [],
    1: [("pilot", _d(5, 15))],
    2: [("pilot", _d(5, 14)), ("enabled", _d(5, 16))],
    3: [("blocked", _d(5, 17))],
}


def tenant_facts(i: int) -> dict:
    """The deterministic facts of tenant i (1-based)."""
    return {
        "external_id": f"T{i:03d}",
        "name": SPECIAL.get(i, f"Tenant {i:03d} {'Alpha' if i % 5 == 0 else 'Beta'}"),
        "tier": TIERS[i % 3],
        "region": ("na", "eu")[(i // 3) % 2],
        "account_manager": (MANAGER_A, MANAGER_B)[(i // 2) % 2],
    }


def features_of(i: int) -> list[str]:
    """Features tenant i uses (breakout_rooms is not a blocker)."""
    found = [f for f, k in (("cloud_recording", 4), ("phone_dialin", 5), ("web_client", 7)) if i % k == 0]
    return found + (["breakout_rooms"] if i % 2 == 0 else [])


def build_world(engine) -> None:
    """Plan rows, 60 tenants and their events (through record_event), and one closed week."""
    now = datetime(2020, 3, 1)
    with write_session(engine) as s:
        s.add(
            Program(
                id="p", name="Plan", start_date=date(2020, 4, 1), end_date=date(2020, 6, 30), synced_at=now
            )
        )
        s.add_all(
            [Tier(code=t, name=t.capitalize(), paid=t != "free", position=k) for k, t in enumerate(TIERS)]
        )
        s.add_all(
            [
                Track(
                    code="encryption",
                    program_id="p",
                    name="Encryption",
                    deadline=date(2020, 5, 30),
                    tiers=list(TIERS),
                    ready_stage="gcm_enabled",
                    blocking_features=[],
                    position=0,
                ),
                Track(
                    code="e2ee",
                    program_id="p",
                    name="E2EE",
                    deadline=None,
                    tiers=["pro", "business"],
                    ready_stage=None,
                    blocking_features=["cloud_recording", "phone_dialin", "web_client", "join_before_host"],
                    position=1,
                ),
            ]
        )
        s.flush()
        for track, stages in (("encryption", ENC), ("e2ee", E2E)):
            s.add_all(
                [
                    TrackStage(
                        track_code=track,
                        code=c,
                        name=c.replace("_", " ").capitalize(),
                        position=k,
                        is_side=False,
                        description=f"About {c}.",
                    )
                    for k, c in enumerate(stages)
                ]
            )
            s.add_all(
                [
                    TrackStage(track_code=track, code=c, name=c.capitalize(), position=100 + k, is_side=True)
                    for k, c in enumerate(("blocked", "rolled_back"))
                ]
            )
        for i in range(1, N_TENANTS + 1):
            t = Tenant(**tenant_facts(i), seats=10, client_version="4.6.10", created_at=now, updated_at=now)
            s.add(t)
            s.flush()
            s.add_all([TenantFeature(tenant_id=t.id, feature=f) for f in features_of(i)])
    with write_session(engine) as s:
        for i in range(1, N_TENANTS + 1):
            ext = f"T{i:03d}"
            events = [("encryption", "legacy_cipher", _d(4, 2))]
            events += [("encryption", st, at) for st, at in ENC_STORIES[i % 6]]
            if TIERS[i % 3] != "free":
                events += [("e2ee", "eligible", _d(5, 1))]
                events += [("e2ee", st, at) for st, at in E2E_STORIES[i % 4]]
            for track, stage, at in events:
                note = "customer change freeze" if stage == "blocked" else ""
                record_event(
                    session=s,
                    actor=SYSTEM,
                    tenant_external_id=ext,
                    track=track,
                    stage=stage,
                    occurred_at=at,
                    note=note,
                )
        close_week(session=s, actor=SYSTEM, week_start=date(2020, 5, 4))


def pinned_world(engine, monkeypatch) -> Iterator:
    """Build the world with the program's today pinned to AS_OF; yield the engine (for a fixture)."""
    monkeypatch.setenv("LOCKSTEP_AS_OF", AS_OF.isoformat())
    get_settings.cache_clear()
    build_world(engine)
    yield engine
    get_settings.cache_clear()


def sql(engine, query: str, **params):
    """All rows of an independent SQL query."""
    with engine.connect() as conn:
        return conn.execute(text(query), params).all()
