"""feature_counts moves with every event, so the E2EE blockers ranking is a sum of kept counts.

Each step below changes a tenant's stage through the service a user would use; after each
one the kept counts must equal a count over current_state and tenant_features, and the
ranking must equal the same question asked of those tables directly.
"""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import select, text

from lockstep.db import read_session, write_session
from lockstep.models import Tenant, TenantFeature
from lockstep.permissions import SYSTEM, Actor
from lockstep.queries.e2ee import blockers_ranking
from lockstep.services.rollout import record_event
from tests.builders import E2EE_BLOCKERS, MANAGERS, add_tenants, seed_plan
from tests.db.test_imports import assert_feature_counts_match_state, assert_rollups_match_state

ADMIN = Actor("admin@lockstep.test", "admin")
MANAGER = Actor(MANAGERS[0], "account_manager")


@pytest.fixture
def world(engine):
    """Plan plus 30 tenants, a third of them per manager, each using up to two blocking features."""
    with write_session(engine) as s:
        seed_plan(s)
        add_tenants(s, 30, seed=4)
    return engine


def ranking_from_tables(engine, manager: str | None = None) -> dict[str, int]:
    """Not-yet-enabled e2ee tenants per blocking feature, straight from current_state."""
    where = "AND cs.account_manager = :m" if manager else ""
    placeholders = ", ".join(f"'{f}'" for f in E2EE_BLOCKERS)
    with read_session(engine) as s:
        rows = s.execute(
            text(
                "SELECT tf.feature, COUNT(*) FROM tenant_features tf JOIN current_state cs "
                "ON cs.tenant_id = tf.tenant_id WHERE cs.track_code = 'e2ee' AND cs.stage_code <> 'enabled' "
                f"AND tf.feature IN ({placeholders}) {where} GROUP BY tf.feature"
            ),
            {"m": manager} if manager else {},
        ).all()
    return {feature: n for feature, n in rows}


def ranking(engine, actor: Actor) -> dict[str, int]:
    with read_session(engine) as s:
        df = blockers_ranking(session=s, actor=actor)
    assert list(df["tenants"]) == sorted(df["tenants"], reverse=True)
    return dict(zip(df["feature"], df["tenants"], strict=True))


def paid_tenants_with_features(engine, manager: str) -> list[str]:
    with read_session(engine) as s:
        return list(
            s.scalars(
                select(Tenant.external_id)
                .where(Tenant.account_manager == manager, Tenant.tier != "free")
                .where(Tenant.id.in_(select(TenantFeature.tenant_id)))
                .order_by(Tenant.external_id)
            )
        )


def test_counts_follow_each_event_and_the_ranking_reads_them(world):
    first, second, third = paid_tenants_with_features(world, MANAGERS[0])[:3]
    steps = [
        (first, "pilot", datetime(2020, 5, 1)),
        (first, "enabled", datetime(2020, 5, 8)),  # leaves the ranking
        (second, "blocked", datetime(2020, 5, 2)),  # a side stage still waits
        (third, "enabled", datetime(2020, 5, 20)),
        (third, "pilot", datetime(2020, 5, 10)),  # back-dated: stays enabled
        (third, "rolled_back", datetime(2020, 5, 25)),  # back in the ranking
    ]
    before = ranking(world, ADMIN)
    assert before == ranking_from_tables(world)
    for tenant, stage, at in steps:
        with write_session(world) as s:
            record_event(
                session=s, actor=SYSTEM, tenant_external_id=tenant, track="e2ee", stage=stage, occurred_at=at
            )
        assert_feature_counts_match_state(world)
        assert_rollups_match_state(world)
        assert ranking(world, ADMIN) == ranking_from_tables(world)
        assert ranking(world, MANAGER) == ranking_from_tables(world, MANAGERS[0])
    # first and third ended enabled and rolled back: only first left the ranking.
    after = ranking(world, ADMIN)
    assert sum(after.values()) < sum(before.values())


def test_an_account_manager_ranks_only_their_own_tenants(world):
    mine = ranking(world, MANAGER)
    everyone = ranking(world, ADMIN)
    assert mine == ranking_from_tables(world, MANAGERS[0])
    assert sum(mine.values()) < sum(everyone.values())
    assert all(mine.get(f, 0) <= n for f, n in everyone.items())
