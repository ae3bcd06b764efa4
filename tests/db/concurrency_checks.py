"""What the concurrent-writer tests assert after the writers are done, by independent SQL.

- every stored current_state row equals a replay of that (tenant, track)'s events;
- stage_counts and feature_counts equal a GROUP BY recount of current_state;
- the audit chain verifies.
"""

from __future__ import annotations

from sqlalchemy import func, select

from lockstep.db import read_session
from lockstep.models import CurrentState, FeatureCount, StageCount, TenantFeature
from lockstep.services.audit import verify
from lockstep.services.rollout import recompute_state


def states_disagreeing_with_replay(engine) -> list[tuple]:
    """(tenant id, track, stored stage, replayed stage) for each state row its events contradict."""
    wrong = []
    with read_session(engine) as s:
        rows = s.execute(
            select(CurrentState.tenant_id, CurrentState.track_code, CurrentState.stage_code,
                   CurrentState.reached_stage_code)
        ).all()
        for tenant_id, track, stage, reached in rows:
            replayed = recompute_state(s, tenant_id, track)
            if (replayed.stage, replayed.reached) != (stage, reached):
                wrong.append((tenant_id, track, f"{stage}/{reached}", f"{replayed.stage}/{replayed.reached}"))
    return wrong


def counts_disagreeing_with_recount(engine) -> dict:
    """{key: (kept, recounted)} for each stage or feature count that differs from a recount."""
    with read_session(engine) as s:
        skey = [CurrentState.track_code, CurrentState.stage_code, CurrentState.tier, CurrentState.region,
                CurrentState.account_manager]
        recount = {("stage", *r[:-1]): r[-1] for r in s.execute(select(*skey, func.count()).group_by(*skey))}
        fkey = [CurrentState.track_code, CurrentState.stage_code, TenantFeature.feature,
                CurrentState.account_manager]
        recount |= {
            ("feature", *r[:-1]): r[-1]
            for r in s.execute(
                select(*fkey, func.count())
                .join(TenantFeature, TenantFeature.tenant_id == CurrentState.tenant_id)
                .group_by(*fkey)
            )
        }
        kept = {
            ("stage", r.track_code, r.stage_code, r.tier, r.region, r.account_manager): r.n
            for r in s.scalars(select(StageCount))
        }
        kept |= {
            ("feature", r.track_code, r.stage_code, r.feature, r.account_manager): r.n
            for r in s.scalars(select(FeatureCount))
        }
    return {
        k: (kept.get(k, 0), recount.get(k, 0))
        for k in kept.keys() | recount.keys()
        if kept.get(k, 0) != recount.get(k, 0)
    }


def audit_chain_problem(engine) -> str:
    """'' when the audit chain verifies, else what is wrong with it."""
    with read_session(engine) as s:
        result = verify(s)
    return "" if result.ok else result.problem
