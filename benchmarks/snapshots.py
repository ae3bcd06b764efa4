"""Weekly snapshot benchmark: back-fill the program's 13 weeks, and close one week.

    .venv/bin/python -m benchmarks.snapshots --size 100k
    .venv/bin/python -m benchmarks.snapshots --size 1m --backend sqlite --runs 5

Each run first deletes the closed weeks (committed, not timed), then times
`backfill_weeks` in its own write transaction, commit included. "Close one week" deletes
only the last closed week and times `close_week` for it, the weekly routine. The median
of --runs runs. The dataset is left with its 13 weeks closed.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.datasets import Dataset, bench_parser, chosen_backends, ensure  # noqa: E402

TARGET_S = 60.0


def _forget(engine, since=None) -> None:
    """Delete closed weeks (all, or from `since` on); the audit entries of earlier closes stay."""
    from sqlalchemy import delete

    from lockstep.db import write_session
    from lockstep.models import SnapshotWeek, WeeklySnapshot

    with write_session(engine) as session:
        ws, sw = delete(WeeklySnapshot), delete(SnapshotWeek)
        if since is not None:
            ws, sw = ws.where(WeeklySnapshot.week_start >= since), sw.where(SnapshotWeek.week_start >= since)
        session.execute(ws)
        session.execute(sw)


def run(ds: Dataset, runs: int, log=print) -> list[dict]:
    """Time back-fill and close-one-week on one dataset."""
    from lockstep.db import make_engine, write_session
    from lockstep.permissions import SYSTEM
    from lockstep.services.snapshots import backfill_weeks, close_week

    engine = make_engine(ds.url)
    backfill, weeks = [], 0
    for _ in range(runs):
        _forget(engine)
        t0 = time.perf_counter()
        with write_session(engine) as session:
            weeks = len(backfill_weeks(session=session, actor=SYSTEM))
        backfill.append(time.perf_counter() - t0)
        log(f"  {ds.backend} {ds.size}: back-fill of {weeks} weeks {backfill[-1]:.1f} s")
    from sqlalchemy import func, select

    from lockstep.models import SnapshotWeek

    with engine.connect() as conn:
        last = conn.scalar(select(func.max(SnapshotWeek.week_start)))
    close = []
    for _ in range(runs):
        _forget(engine, since=last)
        t0 = time.perf_counter()
        with write_session(engine) as session:
            close_week(session=session, actor=SYSTEM, week_start=last)
        close.append(time.perf_counter() - t0)
        log(f"  {ds.backend} {ds.size}: close week {last} {close[-1]:.1f} s")
    engine.dispose()
    def row(what: str, times: list[float]) -> dict:
        return {"backend": ds.backend, "size": ds.size, "what": what, "median_s": statistics.median(times),
                "min_s": min(times), "max_s": max(times), "runs": runs}

    return [row(f"back-fill {weeks} weeks", backfill), row("close one week", close)]


def main(argv: list[str] | None = None) -> int:
    """Command line."""
    p = bench_parser(__doc__, default_backend="both")
    args = p.parse_args(argv)
    backends = chosen_backends(args.backend)
    results = []
    for backend in backends:
        results += run(ensure(Dataset(args.size, backend)), args.runs)
    for r in results:
        met = "met" if r["what"].startswith("close") or r["median_s"] < TARGET_S else "MISSED"
        print(f"{r['backend']:8} {r['size']:4} {r['what']:22} median {r['median_s']:.1f} s over "
              f"{r['runs']} runs (min {r['min_s']:.1f}, max {r['max_s']:.1f}); "
              f"target < {TARGET_S:.0f} s for the back-fill: {met}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
