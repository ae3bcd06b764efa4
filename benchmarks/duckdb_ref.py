"""Hardware reference: DuckDB (columnar, vectorised, all cores) over the same data.

    .venv/bin/python -m benchmarks.duckdb_ref --size 100k --runs 5

Copies current_state and rollout_events from the SQLite dataset into an in-memory DuckDB
(not timed), then times, median of --runs:
- stage counts now: GROUP BY stage over every (tenant, track) state - what stage_counts
  spares the dashboard;
- weekly stage mix from raw events: every tenant's stage at each week end, counted - what
  weekly_snapshots spares it (and what benchmarks/naive.py does in pandas).
The figures say what this machine can do by brute force, next to the maintained-table
reads in benchmarks/queries.py.
"""

from __future__ import annotations

import json
import sqlite3
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.datasets import OUT, Dataset, bench_parser, ensure  # noqa: E402

WEEKLY = """
WITH weeks AS (
    SELECT DISTINCT CAST(date_trunc('week', occurred_at) AS DATE) + 7 AS week_end
    FROM ev WHERE occurred_at >= DATE '2020-03-30' AND occurred_at < DATE '2020-07-06'
),
last_per_week AS (
    SELECT w.week_end, e.tenant_id, arg_max(e.stage_code, e.occurred_at) AS stage
    FROM weeks w JOIN ev e ON e.occurred_at < w.week_end
    GROUP BY w.week_end, e.tenant_id
)
SELECT week_end, stage, count(*) AS n FROM last_per_week GROUP BY week_end, stage ORDER BY week_end, stage
"""
NOW = "SELECT track_code, stage_code, count(*) FROM cs GROUP BY track_code, stage_code"


def main(argv: list[str] | None = None) -> int:
    """Command line."""
    import duckdb
    import pandas as pd

    args = bench_parser(__doc__, default_backend=None).parse_args(argv)
    ensure(Dataset(args.size, "sqlite"))
    src = sqlite3.connect(OUT / f"bench_{args.size}.db")
    t0 = time.perf_counter()
    cs = pd.read_sql("SELECT tenant_id, track_code, stage_code FROM current_state", src)
    ev = pd.read_sql(
        "SELECT tenant_id, stage_code, occurred_at FROM rollout_events WHERE track_code = 'encryption'",
        src, parse_dates=["occurred_at"],
    )
    src.close()
    db = duckdb.connect()
    db.register("cs_df", cs)
    db.register("ev_df", ev)
    db.execute("CREATE TABLE cs AS SELECT * FROM cs_df")
    db.execute("CREATE TABLE ev AS SELECT * FROM ev_df")
    del cs, ev
    load = time.perf_counter() - t0
    results = {}
    for name, sql in (("stage counts now", NOW), ("weekly stage mix from raw events", WEEKLY)):
        times = []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            db.execute(sql).fetchall()
            times.append((time.perf_counter() - t0) * 1000)
        results[name] = statistics.median(times)
        print(f"DuckDB {duckdb.__version__}, {args.size}: {name}: {results[name]:.0f} ms"
              f" (median of {args.runs})")
    print(f"(copying the two tables in from SQLite took {load:.1f} s, not counted)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"size": args.size, "runs": args.runs, "ms": results}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
