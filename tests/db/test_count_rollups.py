"""stage_totals and manager_counts follow stage_counts, and the reads that moved to them answer as before.

Views without a manager read the rollups instead of summing stage_counts (one row per manager
too); the manager filter and "not yet enabled by manager" read manager_counts. Each step
below writes through a service a user would use; after each one the rollups must equal a
count over current_state, and every query that reads them must give what the same question
asked of current_state directly gives.
"""

from __future__ import annotations

from datetime import date, datetime

import pandas as pd
import pytest
from sqlalchemy import select, text

from lockstep.db import read_session, write_session
from lockstep.models import Tenant, TenantFeature
from lockstep.permissions import SYSTEM, Actor
from lockstep.queries import e2ee, overview, rollout, weekly
from lockstep.services.imports import TENANT_COLUMNS, import_tenant_frame
from lockstep.services.repair import rebuild_state
from lockstep.services.rollout import record_event
from tests.builders import MANAGERS, add_tenants, seed_plan
from tests.db.test_imports import assert_rollups_match_state

ADMIN = Actor("admin@lockstep.test", "admin")
MANAGER = Actor(MANAGERS[0], "account_manager")
NEW_MANAGER = "dora@lockstep.test"
AS_OF = date(2020, 6, 30)


@pytest.fixture
def world(engine, monkeypatch):
    """Plan plus 40 tenants over three managers, some moved along both tracks."""
    monkeypatch.setenv("LOCKSTEP_AS_OF", AS_OF.isoformat())
    from lockstep.config import get_settings

    get_settings.cache_clear()
    with write_session(engine) as s:
        seed_plan(s)
        add_tenants(s, 40, seed=9)
    steps = [
        ("t9-00000", "encryption", "clients_upgraded", datetime(2020, 4, 20)),
        ("t9-00001", "encryption", "gcm_enforced", datetime(2020, 5, 2)),
        ("t9-00001", "e2ee", "pilot", datetime(2020, 5, 3)),
        ("t9-00002", "e2ee", "enabled", datetime(2020, 5, 4)),
        ("t9-00003", "encryption", "blocked", datetime(2020, 5, 5)),
        ("t9-00006", "e2ee", "enabled", datetime(2020, 6, 1)),
        ("t9-00007", "encryption", "gcm_enabled", datetime(2020, 6, 25)),
    ]
    for tenant, track, stage, at in steps:
        _record(engine, tenant, track, stage, at)
    yield engine
    get_settings.cache_clear()


def _record(engine, tenant: str, track: str, stage: str, at: datetime) -> None:
    with write_session(engine) as s:
        record_event(
            session=s, actor=SYSTEM, tenant_external_id=tenant, track=track, stage=stage, occurred_at=at
        )


def _sql(engine, query: str, params: dict | None = None) -> list[tuple]:
    with read_session(engine) as s:
        return [tuple(r) for r in s.execute(text(query), params or {})]


def _read(engine, fn, **kwargs):
    with read_session(engine, actor=kwargs.get("actor")) as s:
        return fn(session=s, **kwargs)


def assert_reads_match_state(engine) -> None:
    """Every read that moved to the rollups equals the question asked of current_state."""
    assert_rollups_match_state(engine)
    for actor in (ADMIN, MANAGER):
        mine = "AND account_manager = :m" if actor.is_manager else ""
        params = {"m": actor.email}
        options = _read(engine, rollout.filter_options, actor=actor)
        regions = _sql(
            engine, f"SELECT DISTINCT region FROM current_state WHERE 1=1 {mine} ORDER BY region", params
        )
        assert options["regions"] == [r for (r,) in regions]
        for track in ("encryption", "e2ee"):
            by_stage = dict(
                _sql(
                    engine,
                    "SELECT stage_code, COUNT(*) FROM current_state WHERE track_code = :t "
                    f"{mine} GROUP BY stage_code",
                    {**params, "t": track},
                )
            )
            funnel = _read(engine, rollout.stage_funnel, track=track, actor=actor)
            assert {s: n for s, n in zip(funnel["stage"], funnel["n"], strict=True) if n} == by_stage
            mix = _read(engine, overview.track_stage_mix, actor=actor, track=track)
            assert {s: n for s, n in zip(mix.counts["stage"], mix.counts["n"], strict=True) if n} == by_stage
            cut = _read(engine, rollout.cutover_status, track=track, actor=actor)
            if cut is not None:
                assert cut.total == sum(by_stage.values())
        by_tier = _sql(
            engine,
            "SELECT tier, stage_code, COUNT(*) FROM current_state WHERE track_code = 'e2ee' "
            f"{mine} GROUP BY tier, stage_code",
            params,
        )
        adoption = _read(engine, e2ee.adoption_by_tier, actor=actor)
        assert set(zip(adoption["tier"], adoption["stage"], adoption["n"], strict=True)) == set(by_tier)
        waiting = _sql(
            engine,
            "SELECT account_manager, COUNT(*) FROM current_state WHERE track_code = 'e2ee' "
            f"AND stage_code <> 'enabled' {mine} GROUP BY account_manager",
            params,
        )
        got = _read(engine, e2ee.not_enabled_by_manager, actor=actor)
        assert set(zip(got["account_manager"], got["tenants"], strict=True)) == set(waiting)
        stuck = _read(engine, weekly.stuck_tenants_by_tier, actor=actor, as_of=AS_OF)
        blocked = _sql(
            engine,
            "SELECT tier, COUNT(*) FROM current_state WHERE track_code = 'encryption' "
            f"AND stage_code = 'blocked' {mine} GROUP BY tier",
            params,
        )
        assert {t: n for t, n in zip(stuck["tier"], stuck["blocked"], strict=True) if n} == dict(blocked)
    managers = _read(engine, rollout.filter_options, actor=ADMIN)["managers"]
    assert managers == [
        m for (m,) in _sql(engine, "SELECT DISTINCT account_manager FROM current_state ORDER BY 1")
    ]
    running = _read(engine, weekly.running_week)
    if running is not None:
        enforced = _sql(
            engine,
            "SELECT COUNT(*) FROM current_state WHERE track_code = 'encryption' "
            "AND stage_code = 'gcm_enforced'",
        )
        assert running.enforced == enforced[0][0]


def test_events_move_the_rollups_and_the_reads_follow(world):
    assert_reads_match_state(world)
    for tenant, track, stage, at in [
        ("t9-00008", "encryption", "gcm_enforced", datetime(2020, 6, 2)),
        ("t9-00001", "encryption", "rolled_back", datetime(2020, 6, 3)),
        ("t9-00003", "encryption", "clients_upgraded", datetime(2020, 6, 4)),  # unblocked
        ("t9-00011", "e2ee", "enabled", datetime(2020, 6, 5)),
    ]:
        _record(world, tenant, track, stage, at)
        assert_reads_match_state(world)


def _move_tenants(engine, manager_from: str, manager_to: str) -> None:
    """Hand every tenant of one manager to another through the tenant import, as a CSV upload would."""
    with read_session(engine) as s:
        tenants = s.scalars(select(Tenant).where(Tenant.account_manager == manager_from)).all()
        features = {
            t.id: "|".join(
                sorted(s.scalars(select(TenantFeature.feature).where(TenantFeature.tenant_id == t.id)))
            )
            for t in tenants
        }
        rows = [
            (
                t.external_id,
                t.name,
                t.tier,
                t.region,
                str(t.seats),
                manager_to,
                t.client_version,
                features[t.id],
            )
            for t in tenants
        ]
    assert rows
    with write_session(engine) as s:
        frame = pd.DataFrame(rows, columns=list(TENANT_COLUMNS))
        import_tenant_frame(session=s, frame=frame, actor=SYSTEM, source_name="move.csv")


def test_a_manager_whose_tenants_all_moved_leaves_the_filter(world):
    # Every tenant of the third manager goes to a new one: the old name must leave the list.
    _move_tenants(world, MANAGERS[2], NEW_MANAGER)
    managers = _read(world, rollout.filter_options, actor=ADMIN)["managers"]
    assert MANAGERS[2] not in managers and NEW_MANAGER in managers
    assert_reads_match_state(world)


def test_a_recount_rebuilds_the_rollups(world):
    # Knock the rollups out, then recount as `db rebuild-state` does: they must come back.
    with write_session(world) as s:
        s.execute(text("UPDATE stage_totals SET n = n + 3"))
        s.execute(text("DELETE FROM manager_counts WHERE account_manager = :m"), {"m": MANAGERS[1]})
    with pytest.raises(AssertionError):
        assert_rollups_match_state(world)
    with write_session(world) as s:
        rebuild_state(session=s, actor=SYSTEM, dry_run=False)
    assert_reads_match_state(world)
