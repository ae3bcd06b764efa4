"""Dashboard query benchmark: every query behind Overview, Rollout, E2EE, Weekly and Customers.

    .venv/bin/python -m benchmarks.queries --size 100k              # SQLite and PostgreSQL
    .venv/bin/python -m benchmarks.queries --size 1m --backend sqlite --runs 7
    .venv/bin/python -m benchmarks.queries --size 100k --dataset zipf      # benchmarks/zipf.py's data

Calls the same lockstep.queries functions the pages call, with the arguments of each page's
default view (as an admin, and as the account manager with the most tenants), plus the
manager's tenant list at page 1 and page 100 and a tenant search. Each call opens its own
read session scoped to the call's actor (row-level security for a manager on PostgreSQL),
as `cached_query` does on a cache miss; one untimed warm-up call, then the
median of --runs timed calls. The Weekly page needs closed weeks: when none are closed
the 13 weeks are back-filled first (not timed here; see benchmarks/snapshots.py).
`--dataset zipf` runs the same cases on benchmarks/zipf.py's dataset (Zipf-sized books of
business), `both` on each. Ends with `slowest dashboard query: N ms (NAME, BACKEND[, DATASET])`.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.datasets import Dataset, bench_parser, chosen_backends, ensure  # noqa: E402

TARGET_MS = 100.0
SEARCH = "labs"  # in ~0.9% of generated names: the search must look at every row


def _cases(session) -> list[tuple[str, str, Callable, dict]]:
    """(page, name, function, kwargs) for every query a default page view runs."""
    from sqlalchemy import func, select

    from lockstep.models import Tenant
    from lockstep.permissions import Actor
    from lockstep.queries import customers, e2ee, overview, plan, program, rollout, weekly

    admin = Actor(email="admin@lockstep.example", role="admin")
    biggest = session.execute(
        select(Tenant.account_manager, func.count())
        .where(Tenant.account_manager != "self-serve@lockstep.example")
        .group_by(Tenant.account_manager)
        .order_by(func.count().desc())
        .limit(1)
    ).first()
    am = Actor(email=biggest[0], role="account_manager")
    today = program.program_today(session=session)
    weeks = weekly.closed_weeks(session=session)
    last_week = weeks["week_start"].iloc[-1] if not weeks.empty else None
    first_choice = {}
    for who, actor in (("admin", admin), ("am", am)):
        ch = customers.tenant_choices(session=session, actor=actor, manager=None, search="")
        first_choice[who] = ch["external_id"].iloc[0]
    nofilter = {"tiers": (), "regions": (), "managers": (), "stages": ()}
    out: list[tuple[str, str, Callable, dict]] = []
    for who, actor in (("admin", admin), ("am", am)):
        out += [
            ("overview", "program_window", program.program_window, {}),
            ("overview", "program_deadlines", program.program_deadlines, {}),
            ("overview", "plan_key_numbers", plan.plan_key_numbers, {}),
            (
                "overview",
                f"track_stage_mix encryption [{who}]",
                overview.track_stage_mix,
                {"actor": actor, "track": "encryption"},
            ),
            (
                "overview",
                f"track_stage_mix e2ee paid [{who}]",
                overview.track_stage_mix,
                {"actor": actor, "track": "e2ee", "paid_only": True},
            ),
            ("overview", "final_stage", overview.final_stage, {"track": "e2ee"}),
            ("rollout", "tracks", rollout.tracks, {}),
            ("rollout", "track_stages", rollout.track_stages, {"track": "encryption"}),
            ("rollout", f"filter_options [{who}]", rollout.filter_options, {"actor": actor}),
            (
                "rollout",
                f"stage_funnel [{who}]",
                rollout.stage_funnel,
                {"actor": actor, "track": "encryption", **nofilter},
            ),
            (
                "rollout",
                f"stage_mix_by_week [{who}]",
                rollout.stage_mix_by_week,
                {"actor": actor, "track": "encryption", **nofilter},
            ),
            (
                "rollout",
                f"cutover_status [{who}]",
                rollout.cutover_status,
                {"actor": actor, "track": "encryption", **nofilter},
            ),
            (
                "rollout",
                f"tenant_page p1 [{who}]",
                rollout.tenant_page,
                {"actor": actor, "track": "encryption", "search": "", "page": 1, **nofilter},
            ),
            (
                "rollout",
                f"tenant_page p100 [{who}]",
                rollout.tenant_page,
                {"actor": actor, "track": "encryption", "search": "", "page": 100, **nofilter},
            ),
            (
                "rollout",
                f"tenant_page search '{SEARCH}' [{who}]",
                rollout.tenant_page,
                {"actor": actor, "track": "encryption", "search": SEARCH, "page": 1, **nofilter},
            ),
            (
                "rollout",
                f"tenant_detail [{who}]",
                rollout.tenant_detail,
                {"actor": actor, "tenant_external_id": first_choice[who]},
            ),
            ("e2ee", "enabled_stage", e2ee.enabled_stage, {}),
            ("e2ee", f"adoption_by_tier [{who}]", e2ee.adoption_by_tier, {"actor": actor}),
            (
                "e2ee",
                f"stage_mix_by_week e2ee [{who}]",
                rollout.stage_mix_by_week,
                {"actor": actor, "track": "e2ee"},
            ),
            ("e2ee", f"blockers_ranking [{who}]", e2ee.blockers_ranking, {"actor": actor}),
            ("e2ee", f"not_enabled_by_manager [{who}]", e2ee.not_enabled_by_manager, {"actor": actor}),
            (
                "e2ee",
                f"not_enabled_tenants [{who}]",
                e2ee.not_enabled_tenants,
                {"actor": actor, "manager": am.email},
            ),
            (
                "customers",
                f"tenant_choices [{who}]",
                customers.tenant_choices,
                {"actor": actor, "manager": None, "search": ""},
            ),
            (
                "customers",
                f"tenant_choices search '{SEARCH}' [{who}]",
                customers.tenant_choices,
                {"actor": actor, "manager": None, "search": SEARCH},
            ),
            (
                "customers",
                f"customer_status [{who}]",
                customers.customer_status,
                {"actor": actor, "tenant_external_id": first_choice[who]},
            ),
        ]
    out.append(
        (
            "customers",
            "tenant_choices one manager [admin]",
            customers.tenant_choices,
            {"actor": admin, "manager": am.email, "search": ""},
        )
    )
    if last_week is not None:
        out += [
            ("weekly", "closed_weeks", weekly.closed_weeks, {}),
            ("weekly", "encryption_forecast", weekly.encryption_forecast, {"as_of_week": last_week}),
            ("weekly", "e2ee_adoption_by_week", weekly.e2ee_adoption_by_week, {"as_of_week": last_week}),
            ("weekly", "plan_burnup", weekly.plan_burnup, {"as_of_week": last_week}),
            (
                "weekly",
                "stage_mix_by_week",
                weekly.stage_mix_by_week,
                {"track": "encryption", "as_of_week": last_week},
            ),
            ("weekly", "restated_numbers", weekly.restated_numbers, {"as_of_week": last_week}),
            ("weekly", "top_risks", weekly.top_risks, {"actor": admin, "as_of": today}),
        ]
    # The same query with the same arguments is one cache entry; time it once.
    seen, unique = set(), []
    for page, name, fn, kw in out:
        key = (fn.__module__, fn.__qualname__, repr(sorted(kw.items())))
        if key not in seen:
            seen.add(key)
            unique.append((page, name, fn, kw))
    return unique


def _ensure_weeks(engine) -> None:
    from sqlalchemy import func, select

    from lockstep.db import write_session
    from lockstep.models import SnapshotWeek
    from lockstep.permissions import SYSTEM
    from lockstep.services.snapshots import backfill_weeks

    with engine.connect() as conn:
        if conn.scalar(select(func.count()).select_from(SnapshotWeek)):
            return
    with write_session(engine) as session:
        backfill_weeks(session=session, actor=SYSTEM)


def run(ds, runs: int, *, only: str | None = None, dataset: str = "demo", log=print) -> list[dict]:
    """Time every case on one dataset; returns one dict per query."""
    from lockstep.db import make_engine, read_session

    engine = make_engine(ds.url)
    _ensure_weeks(engine)
    with read_session(engine) as session:
        cases = _cases(session)
    results = []
    for page, name, fn, kw in cases:
        if only and only not in name:
            continue
        times = []
        for i in range(runs + 1):
            t0 = time.perf_counter()
            # Scoped to the actor as the app's run_query does: on PostgreSQL a manager's
            # queries run as lockstep_app under row-level security.
            with read_session(engine, actor=kw.get("actor")) as session:
                fn(session=session, **kw)
            if i:  # the first call warms caches and is not counted
                times.append((time.perf_counter() - t0) * 1000)
        med = statistics.median(times)
        results.append(
            {
                "backend": ds.backend,
                "size": ds.size,
                "dataset": dataset,
                "page": page,
                "query": name,
                "median_ms": med,
                "min_ms": min(times),
                "max_ms": max(times),
                "runs": runs,
            }
        )
        flag = "" if med <= TARGET_MS else "  MISS"
        log(
            f"  {ds.backend:8} {page:9} {name:45} {med:9.1f} ms"
            f"  (min {min(times):.1f}, max {max(times):.1f}){flag}"
        )
    engine.dispose()
    return results


def main(argv: list[str] | None = None) -> int:
    """Command line."""
    p = bench_parser(__doc__, default_backend="both")
    p.add_argument("--only", help="only queries whose name contains this")
    p.add_argument("--dataset", choices=["demo", "zipf", "both"], default="demo")
    args = p.parse_args(argv)
    backends = chosen_backends(args.backend)
    results = []
    for dataset in ["demo", "zipf"] if args.dataset == "both" else [args.dataset]:
        for backend in backends:
            if dataset == "demo":
                ds = ensure(Dataset(args.size, backend))
            else:
                from benchmarks import zipf

                ds = zipf.ensure(zipf.ZipfDataset(args.size, backend))
            log_ds = "" if dataset == "demo" else f" [{dataset}]"
            print(f"{dataset} {args.size} {backend}{log_ds}")
            results += run(ds, args.runs, only=args.only, dataset=dataset)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1))
    misses = [r for r in results if r["median_ms"] > TARGET_MS]
    print(f"{len(results)} query timings, {len(misses)} over {TARGET_MS:.0f} ms")
    if results:
        worst = max(results, key=lambda r: r["median_ms"])
        where = f"{worst['query']}, {worst['backend']}"
        if args.dataset != "demo":
            where += f", {worst['dataset']}"
        print(f"slowest dashboard query: {worst['median_ms']:.0f} ms ({where})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
