"""Small uploads into a big database: 10 and 1,000 rollout events into the 1M (or 100k) dataset.

    .venv/bin/python -m benchmarks.small_import --size 1m --backend both

What an account manager's or a telemetry job's everyday CSV costs once the program is
large. Each run picks tenants whose e2ee stage can move one step forward and imports one
event per tenant (just after the last closed week, so no restatement) through
`import_event_frame`, the path every upload takes, in its own transaction that is then
rolled back, so the dataset is left as it was. Two ways of keeping stage_counts and
feature_counts right are timed in the same process: moving them by the difference over the
tenants the upload names (what imports do), and recounting every tenant
(`RECOUNT_SHARE = 0`, what imports did before). The median of --runs runs.
"""

from __future__ import annotations

import statistics
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.datasets import Dataset, bench_parser, chosen_backends, ensure  # noqa: E402

SIZES = (10, 1000)
NEXT = {"eligible": "pilot", "pilot": "enabled"}


def upload(session, rows: int):
    """An events frame moving `rows` e2ee tenants one stage on, after every closed week."""
    import pandas as pd
    from sqlalchemy import func, select

    from lockstep.clock import week_end
    from lockstep.models import CurrentState, SnapshotWeek, Tenant

    last = session.scalar(select(func.max(SnapshotWeek.week_start)))
    at = week_end(last) + timedelta(hours=1) if last else datetime(2020, 6, 29, 12)
    picked = session.execute(
        select(Tenant.external_id, CurrentState.stage_code)
        .join(CurrentState, CurrentState.tenant_id == Tenant.id)
        .where(
            CurrentState.track_code == "e2ee",
            CurrentState.stage_code.in_(list(NEXT)),
            CurrentState.since < at,
        )
        .order_by(Tenant.id)
        .limit(rows)
    ).all()
    return pd.DataFrame(
        {
            "tenant_id": [ext for ext, _ in picked],
            "track": "e2ee",
            "stage": [NEXT[stage] for _, stage in picked],
            "occurred_at": [(at + timedelta(seconds=i)).isoformat() for i in range(len(picked))],
            "source": "benchmark",
            "note": "",
        }
    )


def time_upload(engine, rows: int, recount: bool) -> float:
    """Seconds for one upload of `rows` events, rolled back afterwards."""
    from lockstep.db import write_session
    from lockstep.permissions import SYSTEM
    from lockstep.services import counts
    from lockstep.services.imports import import_event_frame

    share = counts.RECOUNT_SHARE
    counts.RECOUNT_SHARE = 0.0 if recount else share
    seconds = 0.0
    try:
        # A write transaction as every upload gets (SQLite: BEGIN IMMEDIATE), rolled back at the end.
        with write_session(engine) as session:
            frame = upload(session, rows)
            assert len(frame) == rows, f"only {len(frame)} tenants can move"
            t0 = time.perf_counter()
            result = import_event_frame(session=session, frame=frame, actor=SYSTEM, source_name="bench.csv")
            session.flush()
            seconds = time.perf_counter() - t0
            assert result.added == rows
            raise _RollBack
    except _RollBack:
        pass
    finally:
        counts.RECOUNT_SHARE = share
    return seconds


class _RollBack(Exception):
    """Raised inside the write session so that it rolls back instead of committing."""


def main(argv: list[str] | None = None) -> int:
    """Command line."""
    from lockstep.db import make_engine

    p = bench_parser(__doc__.splitlines()[0], default_backend="both")
    p.set_defaults(size="1m", runs=5)
    args = p.parse_args(argv)
    for backend in chosen_backends(args.backend):
        ds = ensure(Dataset(args.size, backend))
        engine = make_engine(ds.url)
        for rows in SIZES:
            for recount in (False, True):
                runs = [time_upload(engine, rows, recount) for _ in range(args.runs)]
                how = "recount every tenant" if recount else "counts moved by delta"
                print(
                    f"{backend:<8} {ds.label}: {rows:>5,} events, {how:<22} "
                    f"median {statistics.median(runs):6.2f} s (min {min(runs):.2f}, max {max(runs):.2f})",
                    flush=True,
                )
        engine.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
