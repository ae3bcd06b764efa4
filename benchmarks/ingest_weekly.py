"""Weekly-file ingest into a big database: import_events of each week's file against the raw driver.

    .venv/bin/python -m benchmarks.ingest_weekly --backend sqlite            # 1M tenants, 10M+ base, 3 x 1.5M
    .venv/bin/python -m benchmarks.ingest_weekly --backend postgresql
    .venv/bin/python -m benchmarks.ingest_weekly --backend sqlite --tenants 100000 \\
        --base-events 1000000 --weekly-events 150000                     # a small run

What it does:
1. Writes a deterministic tenants CSV (benchmarks.ingest.write_tenants) and weekly event
   files: every (tenant, track) pair a tenant's tier is on is a slot; week w holds the next
   `--weekly-events` slots in turn, so a slot comes back every few weeks and each time takes
   its next stage (forward to the last stage, then `blocked` and back to the last stage
   alternately): every row obeys the rules and is written. Times are random within the
   week, the file sorted by time as an export would be.
2. Builds the big database ONCE through the product's import path (`import_tenants`, then
   `import_events` of weekly files in order until it holds --base-events), and keeps it
   under benchmarks/out/weekly/ (SQLite) or as PostgreSQL database lockstep_weekly_<size>
   for later runs with the same parameters.
3. Copies that base database and, on the copy, for each of the next --weeks weekly files in
   order: the raw baseline (the same rows as ready tuples, tenant ids resolved, written by
   sqlite3 executemany / psycopg COPY into the real rollout_events table, same indexes and
   foreign keys, in a transaction that is rolled back, so it sees the table our import
   sees), then our `import_events` of the file (committed, so the next week lands on it).
   Each step runs in its own process, so the peak RSS (VmHWM) is that step's own.
4. Prints the table: seconds, events/s, peak RSS, and the median over the timed weeks.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.ingest import (  # noqa: E402 - after the sys.path line, as a script
    COLUMNS,
    E2EE,
    ENCRYPTION,
    baseline_rows,
    rss_mib,
    tenant_id_map,
    write_tenants,
)

OUT = ROOT / "benchmarks" / "out" / "weekly"
PG_SERVER = os.environ.get("LOCKSTEP_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432")
FIRST_WEEK = np.datetime64("2020-01-06T00:00:00", "s")  # a Monday
WEEK_S = 7 * 86400


# --------------------------------------------------------------------------- data


def _slots(tiers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(tenant index, track index) of every slot: encryption for all tenants, then e2ee for paid ones."""
    n = len(tiers)
    paid = np.flatnonzero(tiers != "free")
    return np.r_[np.arange(n), paid], np.r_[np.zeros(n, np.int8), np.ones(len(paid), np.int8)]


def _stage_names(track: np.ndarray, k: np.ndarray) -> np.ndarray:
    """The k-th event of a slot: forward through the stages, then blocked / last stage alternately."""
    out = np.empty(len(k), dtype=object)
    for code, stages in ((0, ENCRYPTION), (1, E2EE)):
        on = track == code
        ahead = len(stages) - 1
        kk = k[on]
        names = np.where(
            kk < ahead,
            np.asarray(stages[1:], dtype=object)[np.minimum(kk, ahead - 1)],
            np.where((kk - ahead) % 2 == 0, "blocked", stages[-1]),
        )
        out[on] = names
    return out


def write_week(week: int, per_week: int, ids: np.ndarray, tiers: np.ndarray, seed: int, path: Path) -> None:
    """The events CSV of week `week` (0-based): slots [week*per_week, (week+1)*per_week) in turn."""
    tix, track = _slots(tiers)
    if per_week > len(tix):
        raise SystemExit(f"--weekly-events {per_week:,} exceeds the {len(tix):,} (tenant, track) slots")
    p = np.arange(week * per_week, (week + 1) * per_week, dtype=np.int64)
    slot, k = p % len(tix), p // len(tix)
    rng = np.random.default_rng([seed, week])
    t = FIRST_WEEK + (week * WEEK_S + rng.integers(0, WEEK_S, len(p))).astype("timedelta64[s]")
    frame = pd.DataFrame(
        {
            "tenant_id": ids[tix[slot]],
            "track": np.asarray(("encryption", "e2ee"), dtype=object)[track[slot]],
            "stage": _stage_names(track[slot], k),
            "occurred_at": np.datetime_as_string(t, unit="s").astype(object) + "Z",
            "source": "weekly",
            "note": "",
        }
    )
    frame = frame.iloc[np.argsort(t, kind="stable")]
    # Written aside and renamed: a run on the other backend may be reading the same files.
    part = path.with_suffix(".part")
    frame.to_csv(part, index=False)
    part.replace(path)


class Files:
    """The generated input files of one size, written once under the work directory."""

    def __init__(self, args):
        self.args = args
        self.dir = args.workdir / f"data_{args.tenants}_{args.weekly_events}_{args.seed}"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.tenants = self.dir / "tenants.csv"
        self._ids = None

    def _tenants(self) -> tuple[np.ndarray, np.ndarray]:
        if self._ids is None:
            rng = np.random.default_rng(self.args.seed)
            path = self.tenants if not self.tenants.exists() else self.dir / "tenants.tmp.csv"
            self._ids = write_tenants(self.args.tenants, rng, path)
            if path != self.tenants:
                path.unlink()
        return self._ids

    def ensure_tenants(self) -> Path:
        if not self.tenants.exists():
            self._tenants()
        return self.tenants

    def week(self, w: int) -> Path:
        path = self.dir / f"week_{w:03d}.csv"
        if not path.exists():
            ids, tiers = self._tenants()
            write_week(w, self.args.weekly_events, ids, tiers, self.args.seed, path)
        return path


# --------------------------------------------------------------------------- steps (each in a child)


def step_import_tenants(url: str, path: str) -> dict:
    from lockstep.db import make_engine
    from lockstep.permissions import SYSTEM
    from lockstep.services.imports import import_tenants

    engine = make_engine(url)
    t0 = time.perf_counter()
    result = import_tenants(engine=engine, path=Path(path), actor=SYSTEM)
    seconds = time.perf_counter() - t0
    engine.dispose()
    return {"seconds": seconds, "added": result.added, "rss_peak_mib": rss_mib()}


def step_import_events(url: str, path: str) -> dict:
    from lockstep.db import make_engine
    from lockstep.permissions import SYSTEM
    from lockstep.services.imports import import_events

    engine = make_engine(url)
    t0 = time.perf_counter()
    result = import_events(engine=engine, path=Path(path), actor=SYSTEM)
    seconds = time.perf_counter() - t0
    engine.dispose()
    return {"seconds": seconds, "added": result.added, "skipped": result.skipped, "rss_peak_mib": rss_mib()}


def step_raw(url: str, path: str) -> dict:
    """The same rows as ready tuples into the real rollout_events table, timed, then rolled back."""
    rows = baseline_rows(Path(path), tenant_id_map(url))
    if url.startswith("sqlite"):
        con = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
        for statement in ("PRAGMA journal_mode=WAL", "PRAGMA synchronous=NORMAL", "PRAGMA foreign_keys=ON"):
            con.execute(statement)
        marks = ", ".join("?" * len(COLUMNS))
        sql = f"INSERT INTO rollout_events ({', '.join(COLUMNS)}) VALUES ({marks})"  # noqa: S608 - constants
        t0 = time.perf_counter()
        con.execute("BEGIN")
        con.executemany(sql, rows)
        seconds = time.perf_counter() - t0
        con.execute("ROLLBACK")
        con.close()
    else:
        import psycopg

        with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
            t0 = time.perf_counter()
            sql = f"COPY rollout_events ({', '.join(COLUMNS)}) FROM STDIN"
            with conn.cursor() as cur, cur.copy(sql) as cp:
                for row in rows:
                    cp.write_row(row)
            seconds = time.perf_counter() - t0
            conn.rollback()
    return {"seconds": seconds, "added": len(rows), "rss_peak_mib": rss_mib()}


STEPS = {"tenants": step_import_tenants, "events": step_import_events, "raw": step_raw}


def child(step: str, *args: str) -> dict:
    """Run one step in a fresh interpreter and return its JSON report."""
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.ingest_weekly", "--step", step, *args],
        check=False,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    if out.returncode:
        raise SystemExit(f"step {step} {args} failed:\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- databases


class Backend:
    """Where the base and the work database live, and how to copy one onto the other."""

    def __init__(self, args):
        self.args = args
        self.tag = f"{args.tenants}_{args.base_events}_{args.weekly_events}_{args.seed}"
        self.kind = args.backend

    def url(self, which: str) -> str:
        if self.kind == "sqlite":
            return f"sqlite:///{self.args.workdir / f'{which}_{self.tag}.db'}"
        return f"{PG_SERVER}/lockstep_weekly_{which}_{self.tag}"

    def _admin(self):
        from sqlalchemy import create_engine

        return create_engine(f"{PG_SERVER}/postgres", isolation_level="AUTOCOMMIT")

    def _pg(self, *statements: str) -> list:
        from sqlalchemy import text

        admin = self._admin()
        out = []
        with admin.connect() as conn:
            for s in statements:
                result = conn.execute(text(s))
                out.append(result.all() if s.startswith("SELECT") else None)
        admin.dispose()
        return out

    def exists(self, which: str) -> bool:
        if self.kind == "sqlite":
            return Path(self.url(which).removeprefix("sqlite:///")).exists()
        name = self.url(which).rpartition("/")[2]
        return bool(self._pg(f"SELECT 1 FROM pg_database WHERE datname = '{name}'")[0])  # noqa: S608

    def drop(self, which: str) -> None:
        if self.kind == "sqlite":
            path = self.url(which).removeprefix("sqlite:///")
            for f in (path, f"{path}-wal", f"{path}-shm"):
                Path(f).unlink(missing_ok=True)
        else:
            self._pg(f'DROP DATABASE IF EXISTS "{self.url(which).rpartition("/")[2]}" WITH (FORCE)')

    def create(self, which: str) -> None:
        if self.kind == "postgresql":
            self._pg(f'CREATE DATABASE "{self.url(which).rpartition("/")[2]}"')

    def copy(self, src: str, dst: str) -> None:
        self.drop(dst)
        if self.kind == "sqlite":
            a = self.url(src).removeprefix("sqlite:///")
            con = sqlite3.connect(a)
            con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            con.close()
            shutil.copyfile(a, self.url(dst).removeprefix("sqlite:///"))
        else:
            s, d = (self.url(x).rpartition("/")[2] for x in (src, dst))
            self._pg(f'CREATE DATABASE "{d}" TEMPLATE "{s}"')

    def events(self, which: str) -> int:
        from sqlalchemy import create_engine, text

        engine = create_engine(self.url(which))
        with engine.connect() as conn:
            n = conn.execute(text("SELECT count(*) FROM rollout_events")).scalar()
        engine.dispose()
        return int(n)


def build_base(args, files: Files, db: Backend) -> int:
    """The base database, built once through the import path; returns how many weeks it holds."""
    marker = args.workdir / f"base_{db.kind}_{db.tag}.json"
    if marker.exists() and db.exists("base"):
        state = json.loads(marker.read_text())
        print(f"base database reused: {state['events']:,} events in {state['weeks']} weekly files")
        return state["weeks"]
    db.drop("base")
    db.create("base")
    url = db.url("base")
    migrate_with_plan(url)
    r = child("tenants", url, str(files.ensure_tenants()))
    print(f"tenants: {r['added']:,} in {r['seconds']:.1f} s, peak RSS {r['rss_peak_mib']:,.0f} MiB")
    log = {"tenants": r, "weeks": []}
    events, week = 0, 0
    while events < args.base_events:
        r = child("events", url, str(files.week(week)))
        events += r["added"]
        print(
            f"base week {week}: {r['added']:,} events in {r['seconds']:.1f} s "
            f"({r['added'] / r['seconds']:,.0f}/s), peak RSS {r['rss_peak_mib']:,.0f} MiB, load {_load()}",
            flush=True,
        )
        log["weeks"].append(r)
        week += 1
    marker.write_text(json.dumps({"weeks": week, "events": events, "log": log}))
    return week


def _load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


# --------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--tenants", type=int, default=1_000_000)
    parser.add_argument("--base-events", type=int, default=10_000_000)
    parser.add_argument("--weekly-events", type=int, default=1_500_000)
    parser.add_argument("--weeks", type=int, default=3, help="timed weekly files (the median is reported)")
    parser.add_argument("--seed", type=int, default=2020)
    parser.add_argument("--workdir", type=Path, default=OUT)
    parser.add_argument("--skip-raw", action="store_true", help="time only our import")
    parser.add_argument("--tenants-only", action="store_true", help="time only the tenants import")
    parser.add_argument("--step", help=argparse.SUPPRESS)
    args, rest = parser.parse_known_args()
    if args.step:
        print(json.dumps(STEPS[args.step](*rest)))
        return

    args.workdir.mkdir(parents=True, exist_ok=True)
    files = Files(args)
    db = Backend(args)
    print(f"{db.kind}: {args.tenants:,} tenants, base >= {args.base_events:,} events, load {_load()}")
    if args.tenants_only:
        runs = []
        for _ in range(args.weeks):
            db.drop("tenants")
            db.create("tenants")
            migrate_with_plan(db.url("tenants"))
            runs.append(child("tenants", db.url("tenants"), str(files.ensure_tenants())))
            r = runs[-1]
            print(f"  tenants: {r['seconds']:.1f} s, peak {r['rss_peak_mib']:,.0f} MiB, load {_load()}")
        db.drop("tenants")
        med = statistics.median(r["seconds"] for r in runs)
        peak = max(r["rss_peak_mib"] for r in runs)
        print(f"import_tenants {args.tenants:,}: median {med:.1f} s, peak RSS {peak:,.0f} MiB")
        return
    t0 = time.perf_counter()
    base_weeks = build_base(args, files, db)
    print(f"base ready in {time.perf_counter() - t0:.0f} s; copying it for the timed weeks")
    db.copy("base", "work")
    url = db.url("work")
    from lockstep.migrate import upgrade

    upgrade(url)  # a base kept from an older schema gets main's migrations (cheap: no table rewrite so far)
    print(f"work copy has {db.events('work'):,} events, load {_load()}")
    ours, raw = [], []
    for w in range(base_weeks, base_weeks + args.weeks):
        path = files.week(w)
        if not args.skip_raw:
            raw.append(child("raw", url, str(path)))
        ours.append(child("events", url, str(path)))
        assert ours[-1]["added"] == args.weekly_events, ours[-1]
        r = ours[-1]
        extra = ""
        if raw:
            extra = f"; raw {raw[-1]['seconds']:.1f} s ({raw[-1]['added'] / raw[-1]['seconds']:,.0f}/s)"
        print(
            f"week {w}: ours {r['seconds']:.1f} s ({r['added'] / r['seconds']:,.0f}/s, "
            f"peak {r['rss_peak_mib']:,.0f} MiB){extra}, load {_load()}",
            flush=True,
        )
    _table(args, db, ours, raw)


def migrate_with_plan(url: str) -> None:
    """Migrate the database at `url` and seed the test plan (tracks and stages the events name)."""
    from lockstep.db import make_engine, write_session
    from lockstep.migrate import upgrade
    from tests.builders import seed_plan

    upgrade(url)
    engine = make_engine(url)
    with write_session(engine) as s:
        seed_plan(s)
    engine.dispose()


def _table(args, db: Backend, ours: list[dict], raw: list[dict]) -> None:
    n = args.weekly_events
    print(f"\n{db.kind}: weekly files of {n:,} events, base {args.base_events:,}+, {args.tenants:,} tenants")
    print("| step | median s | events/s | runs (s) | peak RSS MiB |")
    print("|---|---:|---:|---|---:|")
    for label, runs in (("import_events", ours), ("raw driver, real table", raw)):
        if not runs:
            continue
        med = statistics.median(r["seconds"] for r in runs)
        all_ = ", ".join(f"{r['seconds']:.1f}" for r in runs)
        peak = max(r["rss_peak_mib"] for r in runs)
        print(f"| {label} | {med:.1f} | {n / med:,.0f} | {all_} | {peak:,.0f} |")
    if raw:
        ratio = statistics.median(r["seconds"] for r in raw) / statistics.median(r["seconds"] for r in ours)
        print(f"ours / raw (events/s): {ratio:.2f}")
    python = sys.version.split()[0]
    print(f"load {_load()}; {os.cpu_count()} CPUs; python {python}; sqlite {sqlite3.sqlite_version}")


if __name__ == "__main__":
    main()
