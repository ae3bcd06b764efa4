"""Deterministic test data: a minimal plan and tenants, inserted directly with the ORM.

The plan mirrors the shipped one in shape: five tiers (free is the only unpaid one), the
`encryption` track for every tier and the `e2ee` track for paid tiers, each with the side
stages `blocked` and `rolled_back`. Rows are inserted directly (only the stage counts are
recounted with rebuild_stage_counts), so tests of a service start from known rows without
depending on another service.
"""

from __future__ import annotations

import random
from datetime import date, datetime

from sqlalchemy.orm import Session

from lockstep.models import CurrentState, Program, Tenant, TenantFeature, Tier, Track, TrackStage
from lockstep.services.rollout import rebuild_stage_counts

PROGRAM_ID = "zoom-2020"
TIERS = ("free", "pro", "business", "enterprise", "education")
PAID_TIERS = TIERS[1:]
ENCRYPTION_STAGES = ("legacy_cipher", "clients_upgraded", "gcm_enabled", "gcm_enforced")
E2EE_STAGES = ("eligible", "pilot", "enabled")
E2EE_BLOCKERS = ("cloud_recording", "phone_dialin", "join_before_host", "web_client")
REGIONS = ("us-east", "us-west", "eu-central", "ap-southeast")
MANAGERS = ("ana@lockstep.test", "ben@lockstep.test", "chen@lockstep.test")
# Tenants are created at the program start, so events in the program's window follow them.
CREATED_AT = datetime(2020, 4, 1)


def seed_plan(session: Session) -> None:
    """Insert the program, tiers, the two tracks and their stages (flushes, does not commit)."""
    session.add(
        Program(
            id=PROGRAM_ID,
            name="Zoom 90-day security plan",
            start_date=date(2020, 4, 1),
            end_date=date(2020, 6, 30),
            synced_at=CREATED_AT,
        )
    )
    for i, code in enumerate(TIERS):
        session.add(Tier(code=code, name=code.title(), paid=code != "free", position=i))
    tracks = [
        ("encryption", "AES-256-GCM", TIERS, ENCRYPTION_STAGES, "gcm_enabled", date(2020, 5, 30), []),
        ("e2ee", "End-to-end encryption", PAID_TIERS, E2EE_STAGES, None, None, list(E2EE_BLOCKERS)),
    ]
    for position, (code, name, tiers, stages, ready, deadline, blockers) in enumerate(tracks):
        session.add(
            Track(
                code=code,
                program_id=PROGRAM_ID,
                name=name,
                description="",
                deadline=deadline,
                tiers=list(tiers),
                ready_stage=ready,
                blocking_features=blockers,
                position=position,
            )
        )
        session.flush()
        for p, stage in enumerate(stages):
            session.add(TrackStage(track_code=code, code=stage, name=stage.replace("_", " "), position=p))
        session.add(TrackStage(track_code=code, code="blocked", name="Blocked", position=99, is_side=True))
        session.add(
            TrackStage(track_code=code, code="rolled_back", name="Rolled back", position=100, is_side=True)
        )
    session.flush()


def tenant_tier(i: int) -> str:
    """Tier of the i-th tenant built by add_tenants: free, pro, business, enterprise, education, free, ..."""
    return TIERS[i % len(TIERS)]


def add_tenants(session: Session, n: int, seed: int = 0) -> list[Tenant]:
    """Insert n tenants with current state at each covered track's first stage; return them.

    External ids are `t{seed}-{i:05d}`, so calls with different seeds never collide; the
    tier cycles through TIERS (see tenant_tier) and the rest is drawn from `seed`.
    """
    rng = random.Random(seed)
    tracks = session.query(Track).order_by(Track.position).all()
    first_stage = {
        t.code: session.query(TrackStage.code)
        .filter(TrackStage.track_code == t.code, TrackStage.is_side.is_(False))
        .order_by(TrackStage.position)
        .limit(1)
        .scalar()
        for t in tracks
    }
    tenants = []
    for i in range(n):
        tenant = Tenant(
            external_id=f"t{seed}-{i:05d}",
            name=f"Tenant {seed}-{i}",
            tier=tenant_tier(i),
            region=rng.choice(REGIONS),
            seats=rng.randint(1, 5000),
            account_manager=MANAGERS[i % len(MANAGERS)],
            client_version=f"{rng.randint(4, 5)}.{rng.randint(0, 9)}.{rng.randint(0, 20)}",
            created_at=CREATED_AT,
            updated_at=CREATED_AT,
        )
        session.add(tenant)
        tenants.append(tenant)
    session.flush()
    for tenant in tenants:
        for feature in sorted(rng.sample(E2EE_BLOCKERS, rng.randint(0, 2))):
            session.add(TenantFeature(tenant_id=tenant.id, feature=feature))
        for track in tracks:
            if tenant.tier in track.tiers:
                stage = first_stage[track.code]
                session.add(
                    CurrentState(
                        tenant_id=tenant.id,
                        track_code=track.code,
                        stage_code=stage,
                        reached_stage_code=stage,
                        since=tenant.created_at,
                        tier=tenant.tier,
                        region=tenant.region,
                        account_manager=tenant.account_manager,
                    )
                )
    session.flush()
    rebuild_stage_counts(session)
    return tenants
