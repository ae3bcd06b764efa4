"""Deterministic benchmark datasets, built once and cached.

    .venv/bin/python -m benchmarks.datasets --size 100k            # SQLite file + PostgreSQL db
    .venv/bin/python -m benchmarks.datasets --size 1m --backend sqlite
    .venv/bin/python -m benchmarks.datasets --size 1m --backend postgres --rebuild

Sizes: 100k = 100,000 tenants / ~2,000,000 events; 1m = 1,000,000 tenants / ~20,000,000
events (lockstep.demo.generate_demo with events_per_tenant=20, seed 7). SQLite files go to
benchmarks/out/ (gitignored); PostgreSQL databases are lockstep_bench_100k / lockstep_bench_1m
on the server of LOCKSTEP_BENCH_PG (default postgres@127.0.0.1:5432). A dataset is built
through the same import path the demo and CSV uploads use (validate, insert, current state,
stage counts, audit), then the demo users are added; a marker row in the audit log
records that the build finished, so an interrupted build is rebuilt rather than reused.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, func, select, text  # noqa: E402

OUT = ROOT / "benchmarks" / "out"
PG_SERVER = os.environ.get("LOCKSTEP_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432")
SEED = 7
EVENTS_PER_TENANT = 20
SIZES = {"100k": 100_000, "1m": 1_000_000}


@dataclass(frozen=True)
class Dataset:
    """One cached dataset on one backend."""

    size: str
    backend: str

    @property
    def tenants(self) -> int:
        """Number of tenants."""
        return SIZES[self.size]

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the dataset's database."""
        if self.backend == "sqlite":
            return f"sqlite:///{OUT / f'bench_{self.size}.db'}"
        return f"{PG_SERVER}/lockstep_bench_{self.size}"

    @property
    def label(self) -> str:
        """Short label for tables: '1,000,000 tenants'."""
        return f"{self.tenants:,} tenants"


def _pg_admin():
    return create_engine(f"{PG_SERVER}/postgres", isolation_level="AUTOCOMMIT")


def is_built(ds: Dataset) -> bool:
    """True when the dataset exists and its build finished."""
    if ds.backend == "sqlite" and not (OUT / f"bench_{ds.size}.db").exists():
        return False
    if ds.backend == "postgres":
        with _pg_admin().connect() as conn:
            name = f"lockstep_bench_{ds.size}"
            if not conn.scalar(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}):
                return False
    from lockstep.db import make_engine
    from lockstep.models import AuditEntry

    engine = make_engine(ds.url)
    try:
        with engine.connect() as conn:
            done = conn.scalar(
                select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "bench.dataset_built")
            )
        return bool(done)
    except Exception:  # noqa: BLE001 - a half-made database counts as not built
        return False
    finally:
        engine.dispose()


def _fresh(ds: Dataset) -> None:
    if ds.backend == "sqlite":
        OUT.mkdir(parents=True, exist_ok=True)
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(f"{OUT / f'bench_{ds.size}.db'}{suffix}").unlink(missing_ok=True)
        return
    name = f"lockstep_bench_{ds.size}"
    admin = _pg_admin()
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()


def build(ds: Dataset, *, log=print) -> dict:
    """Build the dataset from scratch: migrate, sync the plan, import demo tenants and events, users."""
    from lockstep import demo
    from lockstep.db import make_engine, write_session
    from lockstep.migrate import upgrade
    from lockstep.permissions import SYSTEM
    from lockstep.plan.sync import sync_plan_file
    from lockstep.services import audit, imports

    _fresh(ds)
    t0 = time.perf_counter()
    upgrade(ds.url)
    engine = make_engine(ds.url)
    sync_plan_file(ROOT / "plan" / "90-day-plan.yaml", engine=engine)
    data = demo.generate_demo(tenants=ds.tenants, seed=SEED, events_per_tenant=EVENTS_PER_TENANT)
    log(f"  generated {len(data.tenants):,} tenants, {len(data.events):,} events "
        f"in {time.perf_counter() - t0:.0f} s")
    with write_session(engine) as session:
        imports.import_tenant_frame(
            session=session, frame=data.tenants, actor=SYSTEM, source_name="bench",
            created_at=datetime.combine(demo.PROGRAM_START, datetime.min.time()),
        )
    log(f"  tenants imported at {time.perf_counter() - t0:.0f} s")
    n_events = len(data.events)
    with write_session(engine) as session:
        imports.import_event_frame(session=session, frame=data.events, actor=SYSTEM, source_name="bench")
    del data
    log(f"  events imported at {time.perf_counter() - t0:.0f} s")
    with write_session(engine) as session:
        demo._add_demo_users(session, SYSTEM)  # the same users `lockstep demo` makes, for sign-in
        audit.append(
            session, SYSTEM, "bench.dataset_built", "dataset", f"{ds.size}/{SEED}/{EVENTS_PER_TENANT}",
            after={"tenants": ds.tenants, "events": n_events},
        )
    if ds.backend == "postgres":
        # Set the visibility map, as autovacuum would after a while, so index-only scans apply.
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE")
    engine.dispose()
    seconds = time.perf_counter() - t0
    log(f"  built {ds.backend} {ds.size} in {seconds:.0f} s")
    return {"seconds": seconds, "events": n_events}


def ensure(ds: Dataset, *, rebuild: bool = False, log=print) -> Dataset:
    """Build the dataset unless a finished build is cached; returns it."""
    from lockstep.migrate import upgrade

    if rebuild or not is_built(ds):
        log(f"building {ds.backend} dataset {ds.size} ({ds.tenants:,} tenants)...")
        build(ds, log=log)
    else:
        upgrade(ds.url)  # a cached dataset gets any newer migration (e.g. an index)
        if ds.backend == "sqlite":  # and statistics, as the importer (imports._refresh_statistics) leaves
            analyze_sqlite(OUT / f"bench_{ds.size}.db")
    return ds


def analyze_sqlite(path: Path) -> None:
    """Full statistics for the tables the dashboard reads (rollout_events is read per tenant only)."""
    import sqlite3

    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA analysis_limit = 0")
        for table in ("tenants", "tenant_features", "current_state", "stage_counts"):
            conn.execute(f"ANALYZE {table}")
        conn.commit()
    finally:
        conn.close()


def pg_available() -> bool:
    """True when the benchmark PostgreSQL server answers."""
    try:
        with _pg_admin().connect() as conn:
            conn.scalar(text("SELECT 1"))
        return True
    except Exception:  # noqa: BLE001
        return False


def bench_parser(description: str | None, *, default_backend: str | None) -> argparse.ArgumentParser:
    """Options every measuring script takes: --size, --backend (None: SQLite only), --runs, --json."""
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", choices=sorted(SIZES), default="100k")
    if default_backend is not None:
        p.add_argument("--backend", choices=["sqlite", "postgres", "both"], default=default_backend)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--json", type=Path, help="write the results here")
    return p


def chosen_backends(choice: str) -> list[str]:
    """The backends a --backend choice names, without PostgreSQL when it does not answer."""
    backends = ["sqlite", "postgres"] if choice == "both" else [choice]
    if "postgres" in backends and not pg_available():
        print("PostgreSQL not reachable: skipping it")
        backends.remove("postgres")
    return backends


def main(argv: list[str] | None = None) -> int:
    """Command line: build (or reuse) the datasets asked for."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", choices=sorted(SIZES), default="100k")
    p.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    p.add_argument("--rebuild", action="store_true")
    args = p.parse_args(argv)
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    for backend in backends:
        ensure(Dataset(args.size, backend), rebuild=args.rebuild)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
