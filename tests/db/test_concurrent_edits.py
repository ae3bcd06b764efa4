"""Two app processes edit the same plan item at once: one change is saved, the other conflicts.

Several Streamlit processes may serve one database. Each process here is a real OS process
(multiprocessing, spawn) with its own engine, as a second app server would have. On
PostgreSQL both read the item inside their transactions and only then meet at a barrier, so
both hold version 1 when they write: the worst interleaving, where a lost update would show.
On SQLite a write transaction takes the database's write lock when it begins (BEGIN
IMMEDIATE), so the processes meet at the barrier just before beginning; the second waits
for the first and then sees the new version.
"""

from __future__ import annotations

import multiprocessing as mp

from sqlalchemy import func, select

from lockstep.db import make_engine, read_session, write_session
from lockstep.errors import ConflictError
from lockstep.models import AuditEntry, PlanItem, PlanItemUpdate
from lockstep.permissions import Actor
from tests.db.test_plan_queries import seed_plan

ITEM = "A3"
WAIT = 60  # seconds: only so that a broken run fails instead of hanging


def _edit(url: str, who: int, barrier, results) -> None:
    """One app process: load the item at version 1 and save a comment of its own."""
    engine = make_engine(url)
    actor = Actor(f"lead{who}@example.com", "security_lead")
    from lockstep.services.plan_items import update_plan_item

    try:
        if engine.dialect.name == "sqlite":
            barrier.wait(WAIT)
        with write_session(engine) as session:
            if engine.dialect.name != "sqlite":
                assert session.get(PlanItem, ITEM).version == 1
                barrier.wait(WAIT)
            change = update_plan_item(
                session=session, actor=actor, item_id=ITEM, expected_version=1, comment=f"edit from {who}"
            )
        results.put((who, "saved", change.version))
    except ConflictError as exc:
        results.put((who, "conflict", str(exc)))
    except Exception as exc:  # noqa: BLE001 - report anything else to the test
        results.put((who, "error", repr(exc)))
    finally:
        engine.dispose()


def test_two_processes_one_saved_change_one_conflict(db_url):
    engine = make_engine(db_url)
    with write_session(engine) as s:
        seed_plan(s)
    with read_session(engine) as s:
        assert s.get(PlanItem, ITEM).version == 1
        audits_before = s.scalar(select(func.count()).select_from(AuditEntry))

    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_edit, args=(db_url, who, barrier, results)) for who in (1, 2)]
    for p in procs:
        p.start()
    outcomes = sorted(results.get(timeout=2 * WAIT) for _ in procs)
    for p in procs:
        p.join(WAIT)
        assert p.exitcode == 0

    kinds = sorted(kind for _, kind, _ in outcomes)
    assert kinds == ["conflict", "saved"], outcomes
    winner = next(who for who, kind, _ in outcomes if kind == "saved")
    conflict = next(detail for _, kind, detail in outcomes if kind == "conflict")
    assert "nothing was saved" in conflict and "version 2" in conflict
    assert next(v for _, kind, v in outcomes if kind == "saved") == 2

    with read_session(engine) as s:
        item = s.get(PlanItem, ITEM)
        saved = (item.version, item.comment, item.updated_by)
        updates = s.execute(
            select(PlanItemUpdate.version, PlanItemUpdate.changed_by).where(PlanItemUpdate.item_id == ITEM)
        ).all()
        audits = s.scalar(select(func.count()).select_from(AuditEntry))
    assert saved == (2, f"edit from {winner}", f"lead{winner}@example.com")
    assert [tuple(u) for u in updates] == [(2, f"lead{winner}@example.com")]
    assert audits == audits_before + 1
    engine.dispose()
