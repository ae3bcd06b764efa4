"""An event recorded from the Rollout page while a large import runs: it waits, and both finish.

PostgreSQL only: there the import and the single event take row and table locks of their own,
and used to take them in opposite orders (the event held a tenant's state row and waited for
the events table the import had locked; the import then waited for that row: deadlock, import
lost). On SQLite a write transaction holds the whole database from its first statement, so the
two cannot interleave at all.

The import process, once validating (it holds its locks then), waits until the event process
is blocked on a lock (seen in pg_locks) and only then goes on to write; so the event is truly
in flight during the import. Neither may need a retry: waiting, not a deadlock and a retry.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import time
from datetime import datetime

import pytest
from sqlalchemy import func, select, text

from lockstep.db import make_engine, read_session, write_session
from lockstep.models import RolloutEvent, Tenant
from lockstep.permissions import Actor
from tests.builders import add_tenants, seed_plan
from tests.conftest import new_database_url
from tests.db.concurrency_checks import (
    audit_chain_problem,
    counts_disagreeing_with_recount,
    states_disagreeing_with_replay,
)

LEAD = Actor("lead@lockstep.test", "security_lead")
WAIT = 180  # seconds: only so that a broken run fails instead of hanging
TENANTS = 3000


class _RetryCount(logging.Handler):
    def __init__(self):
        super().__init__()
        self.n = 0

    def emit(self, record):
        self.n += 1


def _count_retries() -> _RetryCount:
    handler = _RetryCount()
    logging.getLogger("lockstep.db").addHandler(handler)
    logging.getLogger("lockstep.db").setLevel(logging.INFO)
    return handler


def _wait_for_a_blocked_backend(url: str) -> None:
    """Return once some other connection waits for a lock (polling pg_locks, bounded by WAIT)."""
    engine = make_engine(url)
    deadline = time.monotonic() + WAIT
    try:
        with engine.connect() as conn:
            while time.monotonic() < deadline:
                waiting = conn.execute(
                    text("SELECT count(*) FROM pg_locks WHERE NOT granted AND pid <> pg_backend_pid()")
                ).scalar()
                conn.rollback()
                if waiting:
                    return
                time.sleep(0.02)
        raise AssertionError("the event never waited for the import")
    finally:
        engine.dispose()


def _importer(url: str, path: str, importing, event_sent, results) -> None:
    from lockstep.services.imports import import_events

    retries = _count_retries()
    engine = make_engine(url)
    paused = False

    def progress(done, total):
        nonlocal paused
        if paused:
            return
        paused = True
        importing.set()
        assert event_sent.wait(WAIT)
        _wait_for_a_blocked_backend(url)

    try:
        result = import_events(engine=engine, path=path, actor=LEAD, progress=progress)
        results.put(("import", "done", result.added, retries.n))
    except Exception as exc:  # noqa: BLE001 - report anything to the test
        results.put(("import", "error", repr(exc), retries.n))
    finally:
        engine.dispose()


def _single_event(url: str, tenant: str, importing, event_sent, results) -> None:
    from lockstep.db import write_transaction
    from lockstep.services.rollout import record_event

    retries = _count_retries()
    engine = make_engine(url)
    try:
        assert importing.wait(WAIT)
        event_sent.set()
        done = write_transaction(
            lambda s: record_event(
                session=s,
                actor=LEAD,
                tenant_external_id=tenant,
                track="encryption",
                stage="gcm_enforced",
                occurred_at=datetime(2020, 5, 20, 9),
            ),
            engine=engine,
        )
        results.put(("event", "done", done.after, retries.n))
    except Exception as exc:  # noqa: BLE001 - report anything to the test
        results.put(("event", "error", repr(exc), retries.n))
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_an_event_recorded_during_a_large_import_waits_and_both_finish(request, tmp_path):
    url = new_database_url("postgresql", request, tmp_path)
    engine = make_engine(url)
    with write_session(engine) as s:
        seed_plan(s)
        add_tenants(s, TENANTS, seed=0)
    with read_session(engine) as s:
        ids = list(s.scalars(select(Tenant.external_id).order_by(Tenant.id)))
    path = tmp_path / "events.csv"
    lines = ["tenant_id,track,stage,occurred_at"]
    for tenant in ids:
        lines += [f"{tenant},encryption,clients_upgraded,2020-05-01T09:00:00",
                  f"{tenant},encryption,gcm_enabled,2020-05-10T09:00:00"]
    path.write_text("\n".join(lines) + "\n")

    ctx = mp.get_context("spawn")
    importing, event_sent, results = ctx.Event(), ctx.Event(), ctx.Queue()
    procs = [
        ctx.Process(target=_importer, args=(url, str(path), importing, event_sent, results)),
        ctx.Process(target=_single_event, args=(url, ids[0], importing, event_sent, results)),
    ]
    for p in procs:
        p.start()
    outcomes = {who: rest for who, *rest in (results.get(timeout=WAIT * 2) for _ in procs)}
    for p in procs:
        p.join(WAIT)
        assert p.exitcode == 0

    assert outcomes["import"] == ["done", 2 * TENANTS, 0]
    # The event waited for the import, so it follows the imported gcm_enabled.
    assert outcomes["event"] == ["done", "gcm_enforced", 0]
    with read_session(engine) as s:
        assert s.scalar(select(func.count()).select_from(RolloutEvent)) == 2 * TENANTS + 1
    assert states_disagreeing_with_replay(engine) == []
    assert counts_disagreeing_with_recount(engine) == {}
    assert audit_chain_problem(engine) == ""
    engine.dispose()
