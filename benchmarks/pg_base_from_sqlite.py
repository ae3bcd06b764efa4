"""Build the PostgreSQL weekly-ingest base by copying the SQLite base, instead of importing ~7 weekly files.

    .venv/bin/python -m benchmarks.pg_base_from_sqlite            # the default 1M tenants / 10.5M events base

The SQLite base of `benchmarks.ingest_weekly` was built through the product's imports
(import_tenants, then import_events of weekly files in order), so its tenants, events,
current_state and stage counts agree. This creates the PostgreSQL database the weekly
benchmark looks for (`lockstep_weekly_base_<params>`), migrates it, seeds the same plan, and
COPYs those tables across with their ids (sequences moved past them), then writes the
marker file so `ingest_weekly --backend postgresql` reuses it. Building it through ~7 weekly
imports on PostgreSQL took 5 minutes per file on the shared machine; this takes a few.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.ingest_weekly import OUT, PG_SERVER, Backend, migrate_with_plan  # noqa: E402 - after the sys.path line

# Parents first (foreign keys); the counts are copied as they are, not recounted.
TABLES = ("tenants", "tenant_features", "rollout_events", "current_state", "stage_counts", "feature_counts")
BATCH = 100_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=1_000_000)
    parser.add_argument("--base-events", type=int, default=10_000_000)
    parser.add_argument("--weekly-events", type=int, default=1_500_000)
    parser.add_argument("--seed", type=int, default=2020)
    parser.add_argument("--workdir", type=Path, default=OUT)
    args = parser.parse_args()
    args.backend = "sqlite"
    src = Backend(args)
    marker = args.workdir / f"base_sqlite_{src.tag}.json"
    sqlite_path = src.url("base").removeprefix("sqlite:///")
    if not marker.exists() or not Path(sqlite_path).exists():
        raise SystemExit(f"no SQLite base at {sqlite_path}: run ingest_weekly --backend sqlite first")
    args.backend = "postgresql"
    dst = Backend(args)

    import psycopg

    t0 = time.perf_counter()
    dst.drop("base")
    dst.create("base")
    url = dst.url("base")
    migrate_with_plan(url)

    lite = sqlite3.connect(f"file:{sqlite_path}?mode=ro", uri=True)
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as pg:
        for table in TABLES:
            cols = [r[1] for r in lite.execute(f"PRAGMA table_info({table})")]
            n = 0
            t1 = time.perf_counter()
            cur = lite.execute(f"SELECT {', '.join(cols)} FROM {table} ORDER BY rowid")  # noqa: S608 - constants
            with pg.cursor() as pc, pc.copy(f"COPY {table} ({', '.join(cols)}) FROM STDIN") as cp:
                while rows := cur.fetchmany(BATCH):
                    for row in rows:
                        cp.write_row(row)
                    n += len(rows)
            print(f"{table}: {n:,} rows in {time.perf_counter() - t1:.1f} s", flush=True)
            if "id" in cols:
                pg.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "  # noqa: S608 - constants
                    f"(SELECT coalesce(max(id), 0) + 1 FROM {table}), false)"
                )
        pg.commit()
        pg.autocommit = True
        for table in TABLES:
            pg.execute(f"VACUUM ANALYZE {table}")
    state = json.loads(marker.read_text())
    state["built"] = "copied from the SQLite base by benchmarks/pg_base_from_sqlite.py"
    (args.workdir / f"base_postgresql_{dst.tag}.json").write_text(json.dumps(state))
    print(f"PostgreSQL base {url.rpartition('/')[2]} ({PG_SERVER}) in {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
