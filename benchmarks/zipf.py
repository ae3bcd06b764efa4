"""A second benchmark dataset shaped like a real customer base, loaded through the import path.

    .venv/bin/python -m benchmarks.zipf --size 100k --backend sqlite     # CSVs + SQLite database
    .venv/bin/python -m benchmarks.zipf --size 1m --backend postgres
    .venv/bin/python -m benchmarks.zipf --size 100k --csv-only           # just write the files

Independent of benchmarks/datasets.py and lockstep/demo.py (its own generator, seed 20260),
it writes what a new user would have: `tenants.csv` and one events CSV per program week
(`events_week_01.csv` … `events_week_13.csv`) under benchmarks/out/zipf_SIZE/, then loads
them through `lockstep.services.imports.import_tenants` / `import_events` (what
`python -m lockstep import tenants|events FILE` calls), one file at a time, after
`db upgrade` and `plan sync plan/90-day-plan.yaml`, and closes the weeks
(`snapshot backfill`). The database is benchmarks/out/zipf_SIZE.db (SQLite) or
lockstep_zipf_SIZE (PostgreSQL); a marker row in the audit log records a finished build.

Shapes:
- account managers: Zipf (s = 1) over SIZE/50 managers: at 1M the largest owns ~95,000
  tenants, the 10th ~9,500, the median manager ~10 and the smallest 1-5;
- tiers skewed to free (78% free, 13% pro, 6% business, 2% enterprise, 1% education);
- uneven progress: each manager's book has its own delay (some books lag by weeks), a
  tenant is fast, normal or slow; ~6% never leave the legacy cipher after the baseline
  scan, ~4% stop at clients upgraded, ~5% are blocked (60% of them never unblocked),
  ~1% roll back after enforcement;
- E2EE (paid tiers): a tenant using a blocking feature is blocked with a note naming it;
  the others become eligible, some pilot, fewer enable;
- inventory scans every 5 days confirm the stage of tenants that are moving (about 20 events per
  tenant in all); a stuck or blocked tenant is no longer confirmed, so it shows as stuck
  since its last change.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, func, select, text  # noqa: E402

OUT = ROOT / "benchmarks" / "out"
PG_SERVER = os.environ.get("LOCKSTEP_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432")
SEED = 20260
SIZES = {"100k": 100_000, "1m": 1_000_000}
TENANTS_PER_MANAGER = 50  # on average; the Zipf shape makes most books far smaller
START = pd.Timestamp("2020-04-01")
WEEKS = 13
SCAN_EVERY = 5  # days between inventory scans of one tenant
SCANS = 91 // SCAN_EVERY
DAY = 86_400
HORIZON = 91 * DAY - 3600  # events end before 2020-06-30 23:00

TIERS = ("free", "pro", "business", "enterprise", "education")
TIER_P = (0.78, 0.13, 0.06, 0.02, 0.01)
PAID = np.array([False, True, True, True, True])
REGIONS = ("na", "eu", "apac", "latam", "mea")
REGION_P = (0.40, 0.28, 0.18, 0.09, 0.05)
BLOCKING = (
    "cloud_recording",
    "phone_dialin",
    "join_before_host",
    "web_client",
    "live_streaming",
    "breakout_rooms",
)
# Share of paid tenants using each blocking feature (free tenants use fewer).
BLOCKING_P = (0.12, 0.08, 0.05, 0.06, 0.02, 0.04)
OTHER_FEATURES = ("sso", "waiting_room", "webinars")
NAME_A = (
    "Bright",
    "North",
    "Blue",
    "Summit",
    "Cedar",
    "Harbor",
    "Prime",
    "Silver",
    "Oak",
    "River",
    "Metro",
    "Pioneer",
    "Golden",
    "Evergreen",
    "Coastal",
    "Union",
    "Apex",
    "Lakeside",
    "Granite",
    "Maple",
    "Sunrise",
    "Westfield",
    "Liberty",
    "Crescent",
    "Redwood",
    "Falcon",
    "Keystone",
)
NAME_B = (
    "Dental",
    "Labs",
    "Logistics",
    "Law",
    "Clinic",
    "Academy",
    "Partners",
    "Holdings",
    "Foods",
    "Realty",
    "Media",
    "Consulting",
    "Health",
    "Motors",
    "Studios",
    "Energy",
    "Insurance",
    "Robotics",
    "Bakery",
    "Architects",
    "Pharmacy",
    "Analytics",
    "Travel",
    "Fitness",
    "Capital",
)
NAME_C = ("Inc", "LLC", "Ltd", "GmbH", "Group", "Co", "SA", "Pty Ltd", "")
BLOCK_REASONS = (
    "waiting on customer change window",
    "VDI image still on 4.x clients",
    "customer security review of the 5.0 client",
    "legacy room systems cannot upgrade",
)


@dataclass(frozen=True)
class ZipfDataset:
    """The Zipf-shaped dataset at one size on one backend."""

    size: str
    backend: str

    @property
    def tenants(self) -> int:
        """Number of tenants."""
        return SIZES[self.size]

    @property
    def csv_dir(self) -> Path:
        """Where the generated CSV files go."""
        return OUT / f"zipf_{self.size}"

    @property
    def db_path(self) -> Path:
        """The SQLite file."""
        return OUT / f"zipf_{self.size}.db"

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the dataset's database."""
        if self.backend == "sqlite":
            return f"sqlite:///{self.db_path}"
        return f"{PG_SERVER}/lockstep_zipf_{self.size}"


def manager_sizes(n: int) -> np.ndarray:
    """Tenants per manager, largest first: Zipf with s = 1, every manager at least one tenant."""
    m = max(1, n // TENANTS_PER_MANAGER)
    w = 1.0 / np.arange(1, m + 1)
    sizes = np.maximum(1, np.floor(n * w / w.sum()).astype(np.int64))
    sizes[0] += n - sizes.sum()  # rounding: the remainder goes to the largest book
    return sizes


def manager_email(rank: np.ndarray | int) -> np.ndarray | str:
    """E-mail of the manager with this rank (0 = largest book)."""
    if isinstance(rank, (int, np.integer)):
        return f"am{int(rank) + 1:05d}@zipf.example"
    return np.char.add(np.char.add("am", np.char.zfill((rank + 1).astype(str), 5)), "@zipf.example")


def generate(n: int, seed: int = SEED) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(tenants, events) frames with the CSV import columns; the same n and seed give the same frames."""
    rng = np.random.default_rng(seed)
    sizes = manager_sizes(n)
    # Managers' tenants are interleaved (a book is not a block of consecutive ids).
    manager = rng.permutation(np.repeat(np.arange(len(sizes)), sizes))
    tier = rng.choice(len(TIERS), size=n, p=TIER_P)
    region = rng.choice(len(REGIONS), size=n, p=REGION_P)
    paid = PAID[tier]
    seats = np.where(paid, rng.lognormal(3.0, 1.4, n), rng.lognormal(0.7, 0.6, n)).astype(np.int64) + 1
    names = (
        np.array(NAME_A)[rng.integers(0, len(NAME_A), n)].astype(object)
        + " "
        + np.array(NAME_B)[rng.integers(0, len(NAME_B), n)].astype(object)
        + " "
        + np.array(NAME_C)[rng.integers(0, len(NAME_C), n)].astype(object)
    )
    names = pd.Series(names).str.strip() + " " + pd.Series(np.arange(1, n + 1) % 997).astype(str)
    ext = np.char.add("Z", np.char.zfill(np.arange(1, n + 1).astype(str), 7))
    major = rng.choice([4, 5], size=n, p=[0.55, 0.45])
    minor = rng.integers(0, 7, n)
    client_version = np.char.add(np.char.add(major.astype(str), "."), minor.astype(str))
    uses = np.stack([rng.random(n) < share * np.where(paid, 1.0, 0.4) for share in BLOCKING_P], axis=1)
    other = np.stack([rng.random(n) < 0.3 for _ in OTHER_FEATURES], axis=1)
    feat_names = np.array(BLOCKING + OTHER_FEATURES, dtype=object)
    flags = np.concatenate([uses, other], axis=1)
    features = ["|".join(feat_names[row]) for row in flags]
    tenants = pd.DataFrame(
        {
            "external_id": ext,
            "name": names.to_numpy(),
            "tier": np.array(TIERS)[tier],
            "region": np.array(REGIONS)[region],
            "seats": seats,
            "account_manager": manager_email(manager),
            "client_version": client_version,
            "features": features,
        }
    )

    parts: list[pd.DataFrame] = []

    def add(idx: np.ndarray, track: str, stage, at: np.ndarray, note=None, source="scan") -> None:
        if source != "scan":  # a change is never on a whole minute, so it never meets a scan
            at = at + (at % 60 == 0)
        ok = at < HORIZON
        idx, at = idx[ok], at[ok]
        if isinstance(note, np.ndarray):
            note = note[ok]
        if isinstance(stage, np.ndarray):
            stage = stage[ok]
        parts.append(
            pd.DataFrame(
                {
                    "i": idx,
                    "track": track,
                    "stage": stage,
                    "t": at,
                    "source": source,
                    "note": note if note is not None else "",
                }
            )
        )

    every = np.arange(n)
    # Uneven progress: a book's delay (days) is shared by its tenants; a tenant's own pace on top.
    book_delay = rng.gamma(1.5, 6.0, len(sizes))[manager]
    pace = rng.choice([0.6, 1.0, 1.8], size=n, p=[0.4, 0.4, 0.2])
    sec = rng.integers(1, 60, (n, 8))  # transitions never fall on a whole minute; scans always do

    # encryption: baseline scan in the first two days, then upgrade, enable, enforce.
    t0 = rng.integers(0, 2 * DAY, n) // 60 * 60 + sec[:, 0]
    t1 = t0 + ((26 + book_delay + rng.gamma(2.0, 6.0, n) * pace) * DAY).astype(np.int64) + sec[:, 1]
    t2 = t1 + ((rng.gamma(1.5, 3.0, n) * pace + 1) * DAY).astype(np.int64) + sec[:, 2]
    t3 = (
        np.maximum(t2 + DAY, (59 + rng.normal(0, 6, n) + book_delay * 0.5) * DAY).astype(np.int64) + sec[:, 3]
    )
    r = rng.random(n)
    never = r < 0.06  # still on the legacy cipher at the end, never confirmed again
    stop_upgraded = (r >= 0.06) & (r < 0.10)
    blocked = (r >= 0.10) & (r < 0.15)
    unblocked = blocked & (rng.random(n) < 0.4)
    rolled = (r >= 0.15) & (r < 0.16)
    t_block = t0 + ((3 + rng.random(n) * 45) * DAY).astype(np.int64) + sec[:, 4]
    t_roll = t3 + ((2 + rng.random(n) * 10) * DAY).astype(np.int64) + sec[:, 5]
    re_enforce = rolled & (rng.random(n) < 0.6)
    t_re = t_roll + ((3 + rng.random(n) * 10) * DAY).astype(np.int64) + sec[:, 6]
    # A blocked tenant that is unblocked resumes after the block; one that is not stops there.
    shift = np.where(unblocked, np.maximum(0, t_block + 2 * DAY - t1), 0)
    t1, t2, t3 = t1 + shift, t2 + shift, t3 + shift
    stop = np.full(n, np.iinfo(np.int64).max)
    stop[blocked & ~unblocked] = t_block[blocked & ~unblocked]
    reached = np.stack([t0, t1, t2, t3], axis=1)
    reached[never, 1:] = np.iinfo(np.int64).max
    reached[stop_upgraded, 2:] = np.iinfo(np.int64).max
    for k in range(1, 4):
        reached[:, k] = np.where(reached[:, k] >= stop, np.iinfo(np.int64).max, reached[:, k])
    enc = ("legacy_cipher", "clients_upgraded", "gcm_enabled", "gcm_enforced")
    for k, stage in enumerate(enc):
        has = reached[:, k] < HORIZON
        add(every[has], "encryption", stage, reached[has, k], source="scan" if k == 0 else "rollout")
    rolled &= reached[:, 3] < t_roll
    add(
        every[blocked],
        "encryption",
        "blocked",
        t_block[blocked],
        note=np.array(BLOCK_REASONS)[rng.integers(0, len(BLOCK_REASONS), n)][blocked].astype(object),
        source="rollout",
    )
    add(
        every[rolled],
        "encryption",
        "rolled_back",
        t_roll[rolled],
        note="clients dropped after enforcement",
        source="rollout",
    )
    add(every[rolled & re_enforce], "encryption", "gcm_enforced", t_re[rolled & re_enforce], source="rollout")
    # Weekly scans confirm a moving tenant's stage (not a stuck, blocked or rolled-back one).
    quiet = never | stop_upgraded | blocked | rolled
    scan_off = rng.integers(0, SCAN_EVERY * 24 * 60, n) * 60
    reached_for_scan = np.sort(reached, axis=1)
    for w in range(1, SCANS + 1):
        ts = w * SCAN_EVERY * DAY + scan_off
        pos = (reached_for_scan <= ts[:, None]).sum(axis=1) - 1
        ok = ~quiet & (pos >= 0) & (ts < HORIZON)
        add(every[ok], "encryption", np.array(enc)[pos[ok]].astype(object), ts[ok])

    # e2ee, paid tenants: blocked by a feature, or eligible -> pilot -> enabled.
    p = every[paid]
    m = len(p)
    first_block = np.argmax(uses[p], axis=1)
    has_block = uses[p].any(axis=1)
    e0 = ((20 + rng.gamma(2.0, 8.0, m) + book_delay[p] * 0.7) * DAY).astype(np.int64) + sec[p, 7]
    add(p, "e2ee", "eligible", e0, source="rollout")
    add(
        p[has_block],
        "e2ee",
        "blocked",
        e0[has_block] + 3600 * 24 + 7,
        note=np.char.add("uses ", np.array(BLOCKING)[first_block[has_block]]).astype(object),
        source="rollout",
    )
    pilot = ~has_block & (rng.random(m) < 0.40)
    e1 = e0 + ((3 + rng.gamma(2.0, 5.0, m)) * DAY).astype(np.int64) + 13
    enable = pilot & (rng.random(m) < 0.45)
    e2 = e1 + ((5 + rng.gamma(2.0, 6.0, m)) * DAY).astype(np.int64) + 17
    add(p[pilot], "e2ee", "pilot", e1[pilot], source="rollout")
    add(p[enable], "e2ee", "enabled", e2[enable], source="rollout")
    e_stages = np.array(("eligible", "pilot", "enabled"), dtype=object)
    e_reached = np.stack(
        [e0, np.where(pilot, e1, np.iinfo(np.int64).max), np.where(enable, e2, np.iinfo(np.int64).max)],
        axis=1,
    )
    for w in range(1, SCANS + 1):
        ts = w * SCAN_EVERY * DAY + scan_off[p]
        pos = (e_reached <= ts[:, None]).sum(axis=1) - 1
        ok = ~has_block & ~quiet[p] & (pos >= 0)
        add(p[ok], "e2ee", e_stages[pos[ok]], ts[ok])

    ev = pd.concat(parts, ignore_index=True)
    ev = ev.sort_values(["t", "i"], kind="stable", ignore_index=True)
    events = pd.DataFrame(
        {
            "tenant_id": ext[ev["i"].to_numpy()],
            "track": ev["track"].to_numpy(),
            "stage": ev["stage"].to_numpy(),
            "occurred_at": (START + pd.to_timedelta(ev["t"].to_numpy(), unit="s")).strftime(
                "%Y-%m-%dT%H:%M:%S"
            ),
            "source": ev["source"].to_numpy(),
            "note": ev["note"].to_numpy(),
            "week": (ev["t"].to_numpy() // (7 * DAY)) + 1,
        }
    )
    return tenants, events


def write_csvs(ds: ZipfDataset, *, log=print) -> list[Path]:
    """Write tenants.csv and the weekly events files (once); returns the events files in order."""
    d = ds.csv_dir
    done = d / "DONE"
    files = [d / f"events_week_{w:02d}.csv" for w in range(1, WEEKS + 1)]
    if done.exists():
        return [f for f in files if f.exists()]
    d.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    tenants, events = generate(ds.tenants)
    tenants.to_csv(d / "tenants.csv", index=False)
    for w, f in enumerate(files, start=1):
        events[events["week"] == w].drop(columns="week").to_csv(f, index=False)
    done.write_text(f"{len(tenants)} tenants, {len(events)} events\n")
    log(
        f"  wrote {len(tenants):,} tenants and {len(events):,} events to {d} "
        f"in {time.perf_counter() - t:.0f} s"
    )
    return [f for f in files if f.exists()]


def _pg_admin():
    return create_engine(f"{PG_SERVER}/postgres", isolation_level="AUTOCOMMIT")


def is_built(ds: ZipfDataset) -> bool:
    """True when the dataset's database exists and its build finished."""
    from lockstep.db import make_engine
    from lockstep.models import AuditEntry

    if ds.backend == "sqlite" and not ds.db_path.exists():
        return False
    if ds.backend == "postgres":
        with _pg_admin().connect() as conn:
            if not conn.scalar(
                text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": f"lockstep_zipf_{ds.size}"}
            ):
                return False
    engine = make_engine(ds.url)
    try:
        with engine.connect() as conn:
            return bool(
                conn.scalar(
                    select(func.count())
                    .select_from(AuditEntry)
                    .where(AuditEntry.action == "bench.zipf_built")
                )
            )
    except Exception:  # noqa: BLE001 - a half-made database counts as not built
        return False
    finally:
        engine.dispose()


def _fresh(ds: ZipfDataset) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    if ds.backend == "sqlite":
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(f"{ds.db_path}{suffix}").unlink(missing_ok=True)
        return
    name = f"lockstep_zipf_{ds.size}"
    with _pg_admin().connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))


def bench_users(n: int) -> dict[str, tuple[str, str]]:
    """The users the page benchmark signs in as: role key -> (email, role)."""
    sizes = manager_sizes(n)
    return {
        "admin": ("admin@lockstep.example", "admin"),
        "security_lead": ("lead@lockstep.example", "security_lead"),
        "executive": ("exec@lockstep.example", "executive"),
        "largest_am": (manager_email(0), "account_manager"),
        "smallest_am": (manager_email(len(sizes) - 1), "account_manager"),
    }


def build(ds: ZipfDataset, *, log=print) -> dict:
    """Write the CSVs if needed, then load them into a fresh database through the importers."""
    from lockstep.db import make_engine, write_session
    from lockstep.migrate import upgrade
    from lockstep.permissions import SYSTEM
    from lockstep.plan.sync import sync_plan_file
    from lockstep.services import audit, imports
    from lockstep.services.snapshots import backfill_weeks
    from lockstep.services.users import add_user_with_hash, hash_password

    files = write_csvs(ds, log=log)
    _fresh(ds)
    t0 = time.perf_counter()
    upgrade(ds.url)
    engine = make_engine(ds.url)
    sync_plan_file(ROOT / "plan" / "90-day-plan.yaml", engine=engine)
    steps = {}
    t = time.perf_counter()
    res = imports.import_tenants(engine=engine, path=ds.csv_dir / "tenants.csv", actor=SYSTEM)
    steps["tenants"] = time.perf_counter() - t
    log(f"  {res} in {steps['tenants']:.0f} s")
    added = 0
    for f in files:
        t = time.perf_counter()
        res = imports.import_events(engine=engine, path=f, actor=SYSTEM)
        added += res.added
        steps[f.name] = time.perf_counter() - t
        log(f"  {f.name}: {res} in {steps[f.name]:.0f} s")
    t = time.perf_counter()
    with write_session(engine) as session:
        backfill_weeks(session=session, actor=SYSTEM)
    steps["backfill"] = time.perf_counter() - t
    with write_session(engine) as session:
        pw = hash_password(os.environ.get("LOCKSTEP_DEMO_PASSWORD", "lockstep-demo"))
        for email, role in bench_users(ds.tenants).values():
            add_user_with_hash(session=session, actor=SYSTEM, email=email, role=role, password_hash=pw)
        audit.append(
            session,
            SYSTEM,
            "bench.zipf_built",
            "dataset",
            f"zipf/{ds.size}/{SEED}",
            after={"tenants": ds.tenants, "events": added},
        )
    if ds.backend == "postgres":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE")
    engine.dispose()
    seconds = time.perf_counter() - t0
    log(f"  built zipf {ds.backend} {ds.size} ({added:,} events) in {seconds:.0f} s")
    return {"seconds": seconds, "events": added, "steps": steps}


def ensure(ds: ZipfDataset, *, rebuild: bool = False, log=print) -> ZipfDataset:
    """Build the dataset unless a finished build exists; a built one gets newer migrations."""
    from lockstep.migrate import upgrade

    if rebuild or not is_built(ds):
        log(f"building zipf {ds.backend} {ds.size} ({ds.tenants:,} tenants)...")
        build(ds, log=log)
    else:
        upgrade(ds.url)
    return ds


def main(argv: list[str] | None = None) -> int:
    """Command line: write the CSVs and build (or reuse) the databases asked for."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", choices=sorted(SIZES), default="100k")
    p.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    p.add_argument("--rebuild", action="store_true")
    p.add_argument("--csv-only", action="store_true")
    args = p.parse_args(argv)
    if args.csv_only:
        write_csvs(ZipfDataset(args.size, "sqlite"))
        return 0
    for backend in ["sqlite", "postgres"] if args.backend == "both" else [args.backend]:
        ensure(ZipfDataset(args.size, backend), rebuild=args.rebuild)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
