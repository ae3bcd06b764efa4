"""Baseline: the naive pandas approach to the weekly stage mix, against Lockstep's maintained tables.

    .venv/bin/python -m benchmarks.naive --size 100k --runs 5

Naive: read rollout_events and tenants into pandas (pd.read_sql), then for each week end of
the program take every tenant's last event on the track up to then and count tenants per
week and stage. That is what a dashboard without maintained tables would do on each view.
Lockstep: the same picture from the page's query (lockstep.queries.weekly.stage_mix_by_week,
reading weekly_snapshots). Both on the same SQLite dataset, in this process, median of
--runs; the naive side's peak RSS growth is reported too. The two answers are compared
(counts per week and stage) so the baseline is known to compute the same thing.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import pandas as pd  # noqa: E402

from benchmarks.datasets import Dataset, bench_parser, ensure  # noqa: E402
from benchmarks.ingest import rss_mib  # noqa: E402

TRACK = "encryption"


def naive_stage_mix(engine, mondays: list) -> pd.DataFrame:
    """Weekly stage counts computed in pandas from the raw events: columns week_start, stage, n."""
    events = pd.read_sql(
        "SELECT tenant_id, stage_code, occurred_at, id FROM rollout_events WHERE track_code = 'encryption'",
        engine,
        parse_dates=["occurred_at"],
    )
    tenants = pd.read_sql("SELECT id, tier FROM tenants", engine)
    events = events.sort_values(["tenant_id", "occurred_at", "id"])
    out = []
    n_tenants = len(tenants)
    for monday in mondays:
        end = datetime.combine(monday + timedelta(days=7), datetime.min.time())
        upto = events[events["occurred_at"] < end]
        last = upto.groupby("tenant_id", sort=False)["stage_code"].last()
        counts = last.value_counts().to_dict()
        # Tenants with no event yet sit at the first stage.
        counts["legacy_cipher"] = counts.get("legacy_cipher", 0) + (n_tenants - len(last))
        out += [(monday, stage, int(n)) for stage, n in counts.items() if n]
    return pd.DataFrame(out, columns=["week_start", "stage", "n"])


def main(argv: list[str] | None = None) -> int:
    """Command line."""
    args = bench_parser(__doc__, default_backend=None).parse_args(argv)
    from lockstep.db import make_engine, read_session
    from lockstep.queries import weekly

    ds = ensure(Dataset(args.size, "sqlite"))
    engine = make_engine(ds.url)
    from benchmarks.queries import _ensure_weeks

    _ensure_weeks(engine)
    with read_session(engine) as s:
        mondays = list(weekly.closed_weeks(session=s)["week_start"])
    last = mondays[-1]

    ours, naive = [], []
    before = rss_mib()
    for _ in range(args.runs):
        t0 = time.perf_counter()
        with read_session(engine) as s:
            mine = weekly.stage_mix_by_week(session=s, track=TRACK, as_of_week=last)
        ours.append(time.perf_counter() - t0)
    for _ in range(args.runs):
        t0 = time.perf_counter()
        theirs = naive_stage_mix(engine, mondays)
        naive.append(time.perf_counter() - t0)
    grown = rss_mib() - before
    a = mine.rename(columns={"stage_code": "stage", "n_current": "n"})[["week_start", "stage", "n"]]
    a = a[a["n"] > 0].astype({"n": int}).sort_values(["week_start", "stage"])
    b = theirs.sort_values(["week_start", "stage"])
    same = a.reset_index(drop=True).equals(b.reset_index(drop=True))
    row = {"size": args.size, "runs": args.runs, "ours_ms": statistics.median(ours) * 1000,
           "naive_ms": statistics.median(naive) * 1000, "naive_rss_growth_mib": grown, "same_answer": same}
    print(f"weekly stage mix, {args.size}, SQLite, median of {args.runs}: Lockstep {row['ours_ms']:.0f} ms, "
          f"naive pandas {row['naive_ms']:.0f} ms ({row['naive_ms'] / row['ours_ms']:.0f}x), "
          f"naive peak RSS +{grown:.0f} MiB; same answer: {same}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(row, indent=1))
    engine.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
