"""Keeping stage_counts, its rollups and feature_counts right after a write without recounting every tenant.

record_event moves the kept counts one tenant at a time. An import writes many tenants at
once, and a full recount (`rebuild_stage_counts`) costs as much as the whole current_state
table: 12–15 s at a million tenants on SQLite, paid by a ten-row upload and holding the
write lock all along. So an import names the tenants it may change; their rows are tallied
before and after the write, and the difference is added to the kept counts. When the
write touches a large share of all tenants, one full recount is cheaper and is done instead.

stage_counts has two rollups, kept with it in the same transaction (migration 0012 says
why): stage_totals, over managers, and manager_counts, over tier and region. Every change
to stage_counts passes its deltas to `roll_up` (record_event, counts_follow), and every
recount ends with `rebuild_rollups` (rebuild_stage_counts), so no writer has to know them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from sqlalchemy import BigInteger, Column, MetaData, Table, delete, func, insert, select
from sqlalchemy.orm import Session

from lockstep.models import (
    CurrentState,
    FeatureCount,
    ManagerCount,
    StageCount,
    StageTotal,
    Tenant,
    TenantFeature,
)
from lockstep.sqlutil import bulk_insert, insert_for

# Above this share of all tenants, tallying the touched ones twice costs more than one recount.
# Measured on SQLite, 1M tenants / 1.8M states (benchmarks/README.md): one recount 15.5 s;
# naming the tenants plus the two tallies 6.2 s at 25 %, 9.8 s at 40 %, 14.3 s at 60 %, 16.5 s at 100 %.
RECOUNT_SHARE = 0.5

_STAGING = MetaData()
TOUCHED = Table(
    "lockstep_touched",
    _STAGING,
    Column("tenant_id", BigInteger, primary_key=True),
    prefixes=["TEMPORARY"],
)

_STAGE_KEY = (
    CurrentState.track_code,
    CurrentState.stage_code,
    CurrentState.tier,
    CurrentState.region,
    CurrentState.account_manager,
)
_FEATURE_KEY = (
    CurrentState.track_code,
    CurrentState.stage_code,
    TenantFeature.feature,
    CurrentState.account_manager,
)


class Touched:
    """The tenants a bulk write has named so far (see `counts_follow`)."""

    def __init__(self, session: Session, recount: bool):
        self._session = session
        self.recount = recount

    def add(self, tenant_ids: Iterable[int]) -> None:
        """Name more tenants not named yet, e.g. new ones once they have ids (they had no rows before)."""
        if not self.recount:
            bulk_insert(self._session, TOUCHED, ["tenant_id"], ((int(t),) for t in tenant_ids))


@contextmanager
def counts_follow(session: Session, tenant_ids: Iterable[int], *, adding: int = 0) -> Iterator[Touched]:
    """Keep stage_counts and feature_counts right across a write that changes only these tenants.

    `tenant_ids` are existing tenants the write may change; `adding` is how many new tenants
    it will insert (name them with `touched.add(ids)` once inserted). Every current_state row,
    tenant_features row or tenant column the write changes must belong to a named tenant.
    """
    ids = list(dict.fromkeys(int(t) for t in tenant_ids))
    existing = session.scalar(select(func.coalesce(func.max(Tenant.id), 0)))
    recount = len(ids) + adding >= RECOUNT_SHARE * max(existing + adding, 1)
    touched = Touched(session, recount)
    if recount:
        yield touched
        from lockstep.services.rollout import rebuild_stage_counts  # rollout imports this module for roll_up

        rebuild_stage_counts(session)
        return
    conn = session.connection()
    TOUCHED.drop(conn, checkfirst=True)
    TOUCHED.create(conn)
    touched.add(ids)
    before = _tally(session)
    yield touched
    after = _tally(session)
    stage_deltas = _add(session, StageCount, _STAGE_KEY, after[0], before[0])
    _add(session, FeatureCount, _FEATURE_KEY, after[1], before[1])
    roll_up(session, ((row, row["n"]) for row in stage_deltas))
    TOUCHED.drop(conn)


def _tally(session: Session) -> tuple[Counter, Counter]:
    """(per stage_counts key, per feature_counts key) counts of the named tenants' current rows."""
    # IN, not a join: the planner then starts from the few named tenants and probes
    # current_state's primary key, instead of scanning current_state in group order.
    named = CurrentState.tenant_id.in_(select(TOUCHED.c.tenant_id))
    stages = session.execute(select(*_STAGE_KEY, func.count()).where(named).group_by(*_STAGE_KEY))
    features = session.execute(
        select(*_FEATURE_KEY, func.count())
        .where(named)
        .join(TenantFeature, TenantFeature.tenant_id == CurrentState.tenant_id)
        .group_by(*_FEATURE_KEY)
    )
    return (
        Counter({tuple(r[:-1]): r[-1] for r in stages}),
        Counter({tuple(r[:-1]): r[-1] for r in features}),
    )


def _add(session: Session, model, key_columns, after: Counter, before: Counter) -> list[dict]:
    """counts[key] += after[key] - before[key] for every key that moved; returns those deltas."""
    names = [c.key for c in key_columns]
    deltas = [
        {**dict(zip(names, key, strict=True)), "n": after[key] - before[key]}
        for key in sorted(after.keys() | before.keys())
        if after[key] != before[key]
    ]
    if deltas:
        _upsert_add(session, model.__table__, names, deltas)
    return deltas


def _upsert_add(session: Session, table: Table, names: list[str], deltas: list[dict]) -> None:
    """n += delta for each row of `deltas` (key columns `names` and n), in one executemany."""
    stmt = insert_for(session, table)
    stmt = stmt.on_conflict_do_update(index_elements=names, set_={"n": table.c.n + stmt.excluded.n})
    session.execute(stmt, deltas)


_TOTAL_KEY = ("track_code", "stage_code", "tier", "region")
_MANAGER_KEY = ("account_manager", "track_code", "stage_code")


def roll_up(session: Session, moves: Iterable[tuple[dict, int]]) -> None:
    """Carry stage_counts deltas into stage_totals and manager_counts.

    `moves` are (key, delta) with the stage_counts key columns (track_code, stage_code, tier,
    region, account_manager); call it in the transaction that changed stage_counts by them.
    Rows are written in key order, after stage_counts and feature_counts (services/locks.py).
    """
    totals: Counter = Counter()
    managers: Counter = Counter()
    for key, delta in moves:
        totals[tuple(key[k] for k in _TOTAL_KEY)] += delta
        managers[tuple(key[k] for k in _MANAGER_KEY)] += delta
    for table, names, moved in (
        (StageTotal.__table__, _TOTAL_KEY, totals),
        (ManagerCount.__table__, _MANAGER_KEY, managers),
    ):
        rows = [{**dict(zip(names, k, strict=True)), "n": d} for k, d in sorted(moved.items()) if d]
        if rows:
            _upsert_add(session, table, list(names), rows)


def rebuild_rollups(session: Session) -> None:
    """Recount stage_totals and manager_counts from stage_counts (after stage_counts was recounted)."""
    for model, names in ((StageTotal, _TOTAL_KEY), (ManagerCount, _MANAGER_KEY)):
        columns = [getattr(StageCount, k) for k in names]
        session.execute(delete(model))
        session.execute(
            insert(model).from_select(
                [*names, "n"], select(*columns, func.sum(StageCount.n)).group_by(*columns)
            )
        )
