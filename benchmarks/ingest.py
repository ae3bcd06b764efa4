"""Ingest benchmark: import_events on N rows against a raw driver insert of the same rows.

    .venv/bin/python benchmarks/ingest.py                 # 1,000,000 rows, SQLite
    .venv/bin/python benchmarks/ingest.py --rows 100000   # quicker
    .venv/bin/python benchmarks/ingest.py --runs 5        # each step 5 times, medians (the default)
    .venv/bin/python benchmarks/ingest.py --postgres postgresql+psycopg://postgres@127.0.0.1:5432/test

What it does, in one process per measured step so each peak RSS is that step's own, each
step --runs times on a fresh copy of the prepared database (the median is reported):
1. writes a deterministic tenants CSV and an events CSV of N rows in time order (every
   tenant walks `encryption` forward, paid tenants `e2ee` too, so the file obeys the rules);
2. migrates a fresh database, seeds the test plan, imports the tenants;
3. times import_events (parse, validate, write, state, counts, audit: the whole call);
4. times two raw baselines with the same rows as ready-made tuples: sqlite3.executemany into
   a bare table with the same columns and no index (PostgreSQL: psycopg COPY), the issue's
   yardstick; and the same executemany / COPY, in file order, into the real rollout_events
   table of a copy of the database taken before step 3 (its unique index and foreign keys),
   which is what any loader into this schema pays.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TIERS = ("free", "pro", "business", "enterprise", "education")
ENCRYPTION = ("legacy_cipher", "clients_upgraded", "gcm_enabled", "gcm_enforced")
E2EE = ("eligible", "pilot", "enabled")
EVENTS_PER_TENANT = (len(ENCRYPTION) + 4 * (len(ENCRYPTION) + len(E2EE))) / len(TIERS)  # 6.4
COLUMNS = ["tenant_id", "track_code", "stage_code", "occurred_at", "recorded_at", "actor", "source", "note"]


def rss_mib() -> float:
    """Peak resident set size of this process so far, in MiB.

    VmHWM rather than getrusage's ru_maxrss: on Linux ru_maxrss survives exec, so a step
    run as a child would report its parent's peak when that was higher.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def write_tenants(n_tenants: int, rng: np.random.Generator, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Write a tenants CSV of `n_tenants` (ids B0000000…, tiers in turn); return ids and tiers."""
    ids = np.array([f"B{i:07d}" for i in range(n_tenants)], dtype=object)
    tiers = np.array(TIERS, dtype=object)[np.arange(n_tenants) % len(TIERS)]
    tenants = pd.DataFrame(
        {
            "external_id": ids,
            "name": [f"Bench tenant {i}" for i in range(n_tenants)],
            "tier": tiers,
            "region": np.array(["na", "eu", "apac"], dtype=object)[rng.integers(0, 3, n_tenants)],
            "seats": rng.integers(1, 5000, n_tenants),
            "account_manager": np.array(["ana@bench.test", "ben@bench.test"], dtype=object)[
                np.arange(n_tenants) % 2
            ],
            "client_version": "5.0.2",
            "features": "",
        }
    )
    tenants.to_csv(path, index=False)
    return ids, tiers


def generate(rows: int, seed: int, workdir: Path) -> tuple[Path, Path, int]:
    """Write tenants.csv and events.csv; return their paths and the tenant count."""
    n_tenants = int(np.ceil(rows / EVENTS_PER_TENANT)) + 1
    rng = np.random.default_rng(seed)
    tenant_path = workdir / "tenants.csv"
    ids, tiers = write_tenants(n_tenants, rng, tenant_path)

    start = np.datetime64("2020-04-01T00:00:00", "s")
    parts = []
    paid = tiers != "free"
    for track, stages, who in (("encryption", ENCRYPTION, np.ones(n_tenants, bool)), ("e2ee", E2EE, paid)):
        tix = np.flatnonzero(who)
        # Forward walk: each stage a few hours to days after the previous one.
        gaps = rng.integers(3600, 6 * 86400, size=(len(tix), len(stages)))
        times = start + np.cumsum(gaps, axis=1).astype("timedelta64[s]")
        for k, stage in enumerate(stages):
            parts.append(pd.DataFrame({"tix": tix, "track": track, "stage": stage, "t": times[:, k], "k": k}))
    events = pd.concat(parts, ignore_index=True).sort_values(["tix", "track", "k"], kind="stable")
    events = events.iloc[:rows].sort_values(["t", "tix"], kind="stable")
    out = pd.DataFrame(
        {
            "tenant_id": ids[events["tix"].to_numpy()],
            "track": events["track"].to_numpy(),
            "stage": events["stage"].to_numpy(),
            "occurred_at": np.datetime_as_string(events["t"].to_numpy(), unit="s").astype(object) + "Z",
            "source": "bench",
            "note": "",
        }
    )
    event_path = workdir / "events.csv"
    out.to_csv(event_path, index=False)
    return tenant_path, event_path, n_tenants


def prepare_database(url: str, tenant_path: Path) -> float:
    """Migrate, seed the plan, import the tenants; return the tenant import's seconds."""
    from lockstep.db import make_engine, write_session
    from lockstep.migrate import upgrade
    from lockstep.permissions import SYSTEM
    from lockstep.services.imports import import_tenants
    from tests.builders import seed_plan

    upgrade(url)
    engine = make_engine(url)
    with write_session(engine) as s:
        seed_plan(s)
    t0 = time.perf_counter()
    import_tenants(engine=engine, path=tenant_path, actor=SYSTEM)
    seconds = time.perf_counter() - t0
    engine.dispose()
    return seconds


def run_import(url: str, event_path: Path) -> dict:
    """The measured step: one import_events call (run in its own process)."""
    from lockstep.db import make_engine
    from lockstep.permissions import SYSTEM
    from lockstep.services.imports import import_events

    engine = make_engine(url)
    rss_before = rss_mib()
    t0 = time.perf_counter()
    result = import_events(engine=engine, path=event_path, actor=SYSTEM)
    seconds = time.perf_counter() - t0
    engine.dispose()
    return {
        "seconds": seconds,
        "added": result.added,
        "rss_before_mib": rss_before,
        "rss_peak_mib": rss_mib(),
    }


def baseline_rows(event_path: Path, tenant_ids: dict[str, int]) -> list[tuple]:
    """The same rows as ready-made driver tuples (tenant ids resolved, times as stored text)."""
    frame = pd.read_csv(event_path, dtype=str, keep_default_na=False)
    stamps = pd.to_datetime(frame["occurred_at"], format="ISO8601", utc=True).dt.tz_localize(None)
    when = stamps.dt.strftime("%Y-%m-%d %H:%M:%S.%f").tolist()
    tid = frame["tenant_id"].map(tenant_ids).tolist()
    now = "2026-01-01 00:00:00.000000"
    return list(
        zip(
            tid,
            frame["track"].tolist(),
            frame["stage"].tolist(),
            when,
            [now] * len(frame),
            ["system@lockstep"] * len(frame),
            frame["source"].tolist(),
            frame["note"].tolist(),
            strict=True,
        )
    )


def _timed_executemany(path: Path, setup: list[str], sql: str, rows: list[tuple]) -> dict:
    """Open `path` as the app does (WAL), run `setup`, then time one transaction of executemany."""
    con = sqlite3.connect(path, isolation_level=None)
    for statement in ["PRAGMA journal_mode=WAL", "PRAGMA synchronous=NORMAL", *setup]:
        con.execute(statement)
    t0 = time.perf_counter()
    con.execute("BEGIN")
    con.executemany(sql, rows)
    con.execute("COMMIT")
    seconds = time.perf_counter() - t0
    con.close()
    return {"seconds": seconds, "rows": len(rows)}


def run_raw_sqlite(path: Path, event_path: Path, tenant_ids: dict[str, int]) -> dict:
    """sqlite3.executemany of the same rows into a bare table: the floor any importer pays."""
    bare = (
        "CREATE TABLE bare (id INTEGER PRIMARY KEY, tenant_id INTEGER, track_code TEXT, stage_code TEXT, "
        "occurred_at TEXT, recorded_at TEXT, actor TEXT, source TEXT, note TEXT)"
    )
    sql = (
        "INSERT INTO bare (tenant_id, track_code, stage_code, occurred_at, recorded_at, actor, source, note) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
    )
    return _timed_executemany(path, [bare], sql, baseline_rows(event_path, tenant_ids))


def run_raw_sqlite_real(path: Path, event_path: Path, tenant_ids: dict[str, int]) -> dict:
    """sqlite3.executemany of the same rows, in file order, into the real rollout_events table.

    `path` is a copy of the database as it was before our import (tenants, no events), opened
    as the app opens it (foreign keys on): what a hand-written loader into this schema pays.
    """
    sql = (
        "INSERT INTO rollout_events (tenant_id, track_code, stage_code, occurred_at, recorded_at, actor, "
        "source, note) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
    )
    return _timed_executemany(path, ["PRAGMA foreign_keys=ON"], sql, baseline_rows(event_path, tenant_ids))


def _timed_copy(url: str, setup: list[str], table: str, rows: list[tuple]) -> dict:
    """Run `setup` (committed), then time one psycopg COPY of `rows` into `table`, commit included."""
    import psycopg

    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        for statement in setup:
            conn.execute(statement)
        conn.commit()
        t0 = time.perf_counter()
        with conn.cursor() as cur, cur.copy(f"COPY {table} ({', '.join(COLUMNS)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        conn.commit()
        seconds = time.perf_counter() - t0
    return {"seconds": seconds, "rows": len(rows)}


def run_raw_postgres_real(url: str, event_path: Path, tenant_ids: dict[str, int]) -> dict:
    """psycopg COPY of the same rows into the real rollout_events table (a copy of the database)."""
    return _timed_copy(url, [], "rollout_events", baseline_rows(event_path, tenant_ids))


def run_raw_postgres(url: str, event_path: Path, tenant_ids: dict[str, int]) -> dict:
    """psycopg COPY of the same rows into a bare table."""
    bare = (
        "CREATE TABLE bare (id BIGSERIAL PRIMARY KEY, tenant_id BIGINT, track_code VARCHAR(32), "
        "stage_code VARCHAR(32), occurred_at TIMESTAMP, recorded_at TIMESTAMP, actor VARCHAR(254), "
        "source VARCHAR(64), note TEXT)"
    )
    return _timed_copy(url, [bare], "bare", baseline_rows(event_path, tenant_ids))


def tenant_id_map(url: str) -> dict[str, int]:
    from sqlalchemy import select

    from lockstep.db import make_engine, read_session
    from lockstep.models import Tenant

    engine = make_engine(url)
    with read_session(engine) as s:
        out = dict(s.execute(select(Tenant.external_id, Tenant.id)).all())
    engine.dispose()
    return out


def child(step: str, args: list[str]) -> dict:
    """Run one step in a fresh interpreter and return its JSON report."""
    out = subprocess.run(
        [sys.executable, __file__, "--step", step, *args], check=True, capture_output=True, text=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def step_main(step: str, rest: list[str]) -> None:
    if step == "import":
        report = run_import(rest[0], Path(rest[1]))
    elif step == "raw-sqlite":
        report = run_raw_sqlite(Path(rest[0]), Path(rest[1]), tenant_id_map(rest[2]))
        report["rss_peak_mib"] = rss_mib()
    elif step == "raw-sqlite-real":
        report = run_raw_sqlite_real(Path(rest[0]), Path(rest[1]), tenant_id_map(f"sqlite:///{rest[0]}"))
        report["rss_peak_mib"] = rss_mib()
    elif step == "raw-postgres-real":
        report = run_raw_postgres_real(rest[0], Path(rest[1]), tenant_id_map(rest[0]))
        report["rss_peak_mib"] = rss_mib()
    elif step == "raw-postgres":
        report = run_raw_postgres(rest[0], Path(rest[1]), tenant_id_map(rest[0]))
        report["rss_peak_mib"] = rss_mib()
    elif step == "idle":
        import lockstep.services.imports  # noqa: F401 - what an importer process holds before any work

        report = {"rss_peak_mib": rss_mib()}
    else:
        raise SystemExit(f"unknown step {step}")
    print(json.dumps(report))


def summary(runs: list[dict]) -> dict:
    """Median seconds and the highest peak RSS of several runs of one step."""
    return {
        "seconds": statistics.median(r["seconds"] for r in runs),
        "all": [r["seconds"] for r in runs],
        "rss_peak_mib": max(r["rss_peak_mib"] for r in runs),
    }


def report(label: str, rows: int, ours: list[dict], raw: list[dict], real: list[dict], idle: float) -> None:
    steps = {"ours": summary(ours), "raw": summary(raw), "real": summary(real)}
    rate = {key: rows / r["seconds"] for key, r in steps.items()}
    print(f"\n{label} (median of {len(ours)} runs)")
    for name, key in (("import_events", "ours"), ("raw, bare table", "raw"), ("raw, real table", "real")):
        r = steps[key]
        runs = ", ".join(f"{x:.2f}" for x in r["all"])
        print(
            f"  {name:<16}: {r['seconds']:7.2f} s {rate[key]:10,.0f} rows/s  "
            f"peak RSS {r['rss_peak_mib']:,.0f} MiB  (runs: {runs} s)"
        )
    print(f"  ratio to raw into a bare table: {rate['ours'] / rate['raw']:.2f} (target >= 0.50)")
    print(f"  ratio to raw into the real table: {rate['ours'] / rate['real']:.2f}")
    print(f"  idle importer process: {idle:,.0f} MiB")


def _sqlite_copy(src: Path, dst: Path) -> None:
    for f in (dst, Path(f"{dst}-wal"), Path(f"{dst}-shm")):
        f.unlink(missing_ok=True)
    with sqlite3.connect(src) as a, sqlite3.connect(dst) as b:
        a.backup(b)


def measure_sqlite(workdir: Path, tenant_path: Path, event_path: Path, rows: int, runs: int) -> tuple:
    """Each run: our import into a fresh copy of the prepared database, then both raw baselines."""
    pristine = workdir / "pristine.db"
    for f in (pristine, Path(f"{pristine}-wal"), Path(f"{pristine}-shm")):
        f.unlink(missing_ok=True)
    print(f"tenants imported in {prepare_database(f'sqlite:///{pristine}', tenant_path):.1f} s")
    ours, raw, real = [], [], []
    work, bare, copy = workdir / "bench.db", workdir / "raw.db", workdir / "real.db"
    for _ in range(runs):
        _sqlite_copy(pristine, work)
        ours.append(child("import", [f"sqlite:///{work}", str(event_path)]))
        assert ours[-1]["added"] == rows, ours[-1]
        bare.unlink(missing_ok=True)
        raw.append(child("raw-sqlite", [str(bare), str(event_path), f"sqlite:///{pristine}"]))
        _sqlite_copy(pristine, copy)
        real.append(child("raw-sqlite-real", [str(copy), str(event_path)]))
    for f in (work, bare, copy):
        f.unlink(missing_ok=True)
    return ours, raw, real


def measure_postgres(server: str, tenant_path: Path, event_path: Path, rows: int, runs: int) -> tuple:
    """The same on PostgreSQL: each step gets a database cloned from the prepared one."""
    from sqlalchemy import create_engine, text

    name = f"lockstep_bench_{uuid.uuid4().hex[:8]}"
    base = server.rpartition("/")[0]
    admin = create_engine(server, isolation_level="AUTOCOMMIT")

    def fresh(db: str) -> str:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{db}" TEMPLATE "{name}"'))
        return f"{base}/{db}"

    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    ours, raw, real = [], [], []
    try:
        seconds = prepare_database(f"{base}/{name}", tenant_path)
        print(f"\ntenants imported into PostgreSQL in {seconds:.1f} s")
        for _ in range(runs):
            url = fresh(f"{name}_work")
            ours.append(child("import", [url, str(event_path)]))
            assert ours[-1]["added"] == rows, ours[-1]
            raw.append(child("raw-postgres", [fresh(f"{name}_bare"), str(event_path)]))
            real.append(child("raw-postgres-real", [fresh(f"{name}_real"), str(event_path)]))
    finally:
        with admin.connect() as conn:
            for db in (name, f"{name}_work", f"{name}_bare", f"{name}_real"):
                conn.execute(text(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))
        admin.dispose()
    return ours, raw, real


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=2020)
    parser.add_argument("--runs", type=int, default=5, help="runs of each step; the median is reported")
    parser.add_argument(
        "--postgres", metavar="URL", help="also measure on PostgreSQL (a database is created)"
    )
    parser.add_argument("--workdir", type=Path, help="keep files here (default: a temporary directory)")
    parser.add_argument("--step", help=argparse.SUPPRESS)
    args, rest = parser.parse_known_args()
    if args.step:
        step_main(args.step, rest)
        return

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="lockstep-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    tenant_path, event_path, n_tenants = generate(args.rows, args.seed, workdir)
    print(
        f"generated {args.rows:,} events for {n_tenants:,} tenants in {time.perf_counter() - t0:.1f} s "
        f"({event_path.stat().st_size / 2**20:,.0f} MiB) under {workdir}"
    )
    idle = child("idle", [])["rss_peak_mib"]

    label = f"{args.rows:,} rows"
    results = measure_sqlite(workdir, tenant_path, event_path, args.rows, args.runs)
    report(f"SQLite, {label}", args.rows, *results, idle)
    if args.postgres:
        results = measure_postgres(args.postgres, tenant_path, event_path, args.rows, args.runs)
        report(f"PostgreSQL, {label}", args.rows, *results, idle)
    print(
        f"\nmachine: {os.cpu_count()} CPUs; python {sys.version.split()[0]}; sqlite {sqlite3.sqlite_version}"
    )


if __name__ == "__main__":
    main()
