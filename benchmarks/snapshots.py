"""Weekly snapshot benchmark: back-fill the program's 14 weeks, close one week, old vs new.

    .venv/bin/python -m benchmarks.snapshots --size 100k
    .venv/bin/python -m benchmarks.snapshots --size 1m --backend sqlite --runs 3
    .venv/bin/python -m benchmarks.snapshots --size 1m --skip-legacy     # only the current code

Measurements per backend, each the median of --runs:

1. **Computation, old vs new, in one process**: `as_of_counts` (the current code) against
   `legacy_as_of_counts` below (the LAG() window it replaced, kept here verbatim), for the
   14 program weeks at once and for the last week alone, alternating old and new within
   each run so that both see the same load. Read-only; both answers are checked equal.
   Then the new code alone for each of the three weeks before the last, with how many
   current_state rows moved after that week (what the weekly close replays).
2. **Back-fill from none**: delete the closed weeks (committed, not timed), then time
   `backfill_weeks` in its own write transaction, commit included.
3. **Close one week**: delete only the last closed week, time `close_week` for it.

Peak RSS (VmHWM) of the new and the old 14-week computation is measured once each in a
fresh child process. The closed weeks found at the start (rows, n_reported, n_current,
closed_at, closed_by) are put back at the end, so the dataset is left as it was found;
the audit log keeps the entries of the timed closes (it is append-only).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.datasets import Dataset, bench_parser, chosen_backends, ensure  # noqa: E402

TARGET_S = 60.0
PROGRAM_WEEKS = [date(2020, 3, 30) + timedelta(days=7 * i) for i in range(14)]  # 2020-W14..W27


# --- the replaced computation, kept for comparison ------------------------------------------


def legacy_as_of_counts(*, session, mondays: list[date]) -> dict:
    """The pre-rewrite as_of_counts: LAG() over all rollout_events, joined to current_state."""
    from sqlalchemy import select

    from lockstep.models import CurrentState
    from lockstep.services.rollout import load_track_rules

    if not mondays:
        return {}
    mondays = sorted(mondays)
    initial = {code: rules.initial for code, rules in load_track_rules(session).items() if rules.stages}
    running: dict = defaultdict(int)
    from sqlalchemy import func

    for track, tier, region, n in session.execute(
        select(CurrentState.track_code, CurrentState.tier, CurrentState.region, func.count()).group_by(
            CurrentState.track_code, CurrentState.tier, CurrentState.region
        )
    ):
        if track in initial:
            running[(track, initial[track], tier, region)] += n
    result = {}
    deltas = _legacy_weekly_transitions(session, initial)
    i = 0
    for monday in mondays:
        while i < len(deltas) and deltas[i][0] <= monday:
            _wk, track, tier, region, new, old, n = deltas[i]
            running[(track, new, tier, region)] += n
            running[(track, old, tier, region)] -= n
            i += 1
        result[monday] = {key: n for key, n in running.items() if n}
    return result


def _legacy_weekly_transitions(session, initial: dict[str, str]) -> list[tuple]:
    from sqlalchemy import Date, case, cast, func, select

    from lockstep.models import CurrentState, RolloutEvent

    e, cs = RolloutEvent, CurrentState
    if session.get_bind().dialect.name == "sqlite":
        week = func.date(e.occurred_at, "weekday 0", "-6 days")
    else:
        week = cast(func.date_trunc("week", e.occurred_at), Date)
    previous = func.lag(e.stage_code).over(
        partition_by=(e.tenant_id, e.track_code), order_by=(e.occurred_at, e.id)
    )
    t = (
        select(
            week.label("wk"),
            e.track_code.label("track"),
            cs.tier.label("tier"),
            cs.region.label("region"),
            e.stage_code.label("new_stage"),
            func.coalesce(previous, case(initial, value=e.track_code)).label("old_stage"),
        )
        .join(cs, (cs.tenant_id == e.tenant_id) & (cs.track_code == e.track_code))
        .subquery("t")
        .c
    )
    rows = session.execute(
        select(t.wk, t.track, t.tier, t.region, t.new_stage, t.old_stage, func.count())
        .where(t.new_stage != t.old_stage)
        .group_by(t.wk, t.track, t.tier, t.region, t.new_stage, t.old_stage)
    ).all()

    def as_date(value) -> date:
        return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])

    return sorted((as_date(wk), *rest[:-1], int(rest[-1])) for wk, *rest in rows)


# --- helpers ----------------------------------------------------------------------------------


def rss_mib() -> float:
    """Peak resident set size of this process so far (VmHWM), in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def load() -> str:
    """The 1-minute load average, as `uptime` shows it."""
    return f"{os.getloadavg()[0]:.1f}"


def _closed_weeks(engine) -> tuple[list[dict], list[dict]]:
    """Every snapshot_weeks and weekly_snapshots row, to put back at the end."""
    from sqlalchemy import select

    from lockstep.models import SnapshotWeek, WeeklySnapshot

    with engine.connect() as conn:
        weeks = [dict(r._mapping) for r in conn.execute(select(SnapshotWeek.__table__))]
        rows = [dict(r._mapping) for r in conn.execute(select(WeeklySnapshot.__table__))]
    return weeks, rows


def _restore(engine, weeks: list[dict], rows: list[dict]) -> None:
    from sqlalchemy import delete, insert

    from lockstep.db import write_session
    from lockstep.models import SnapshotWeek, WeeklySnapshot

    with write_session(engine) as session:
        session.execute(delete(WeeklySnapshot))
        session.execute(delete(SnapshotWeek))
        if weeks:
            session.execute(insert(SnapshotWeek), weeks)
        if rows:
            session.execute(insert(WeeklySnapshot), rows)


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


def _compute(engine, which: str, mondays: list[date]) -> tuple[float, dict]:
    from lockstep.db import read_session
    from lockstep.services.snapshots import as_of_counts

    fn = as_of_counts if which == "new" else legacy_as_of_counts
    t0 = time.perf_counter()
    with read_session(engine) as session:
        counts = fn(session=session, mondays=mondays)
    return time.perf_counter() - t0, counts


def _stats(times: list[float]) -> dict:
    return {
        "median_s": statistics.median(times),
        "min_s": min(times),
        "max_s": max(times),
        "runs": len(times),
    }


# --- the measurements -------------------------------------------------------------------------


def compare(ds: Dataset, runs: int, log=print) -> list[dict]:
    """Old vs new computation, 14 weeks and the last week, alternating within each run."""
    from lockstep.db import make_engine

    engine = make_engine(ds.url)
    times: dict = defaultdict(list)
    loads = [load()]
    for i in range(runs):
        for label, mondays in (("14 weeks", PROGRAM_WEEKS), ("last week", PROGRAM_WEEKS[-1:])):
            new_s, new = _compute(engine, "new", mondays)
            old_s, old = _compute(engine, "old", mondays)
            if i == 0 and new != old:
                raise SystemExit(f"{ds.backend} {ds.size} {label}: the new counts differ from the old ones")
            times[("new", label)].append(new_s)
            times[("old", label)].append(old_s)
            log(f"  {ds.backend} {ds.size} {label}: new {new_s:.2f} s, old {old_s:.2f} s (load {load()})")
        loads.append(load())
    engine.dispose()
    out = []
    for label in ("14 weeks", "last week"):
        new, old = _stats(times[("new", label)]), _stats(times[("old", label)])
        out.append(
            {
                "backend": ds.backend,
                "size": ds.size,
                "what": f"compute {label}",
                "new": new,
                "old": old,
                "ratio": old["median_s"] / new["median_s"],
                "load": loads,
            }
        )
    return out


def earlier_weeks(ds: Dataset, runs: int, log=print) -> list[dict]:
    """The new computation for one earlier week alone: its cost follows the tenants that moved since."""
    from sqlalchemy import func, select

    from lockstep.clock import week_end
    from lockstep.db import make_engine, read_session
    from lockstep.models import CurrentState

    engine = make_engine(ds.url)
    out = []
    for monday in PROGRAM_WEEKS[-4:-1]:
        with read_session(engine) as session:
            total, moved = session.execute(
                select(func.count(), func.count().filter(CurrentState.since >= week_end(monday)))
            ).one()
        times = [_compute(engine, "new", [monday])[0] for _ in range(runs)]
        log(
            f"  {ds.backend} {ds.size}: {monday} alone, {moved:,} of {total:,} rows moved since: "
            f"median {statistics.median(times):.2f} s (load {load()})"
        )
        out.append(
            {
                "backend": ds.backend,
                "size": ds.size,
                "what": f"compute {monday} alone",
                "new": _stats(times),
                "moved": moved,
                "rows": total,
                "load": [load()],
            }
        )
    engine.dispose()
    return out


def end_to_end(ds: Dataset, runs: int, log=print) -> list[dict]:
    """Back-fill from none and close one week through the services, commit included."""
    from sqlalchemy import func, select

    from lockstep.db import make_engine, write_session
    from lockstep.models import SnapshotWeek
    from lockstep.permissions import SYSTEM
    from lockstep.services.snapshots import backfill_weeks, close_week

    engine = make_engine(ds.url)
    backfill, close, weeks, loads = [], [], 0, [load()]
    for _ in range(runs):
        _forget(engine)
        t0 = time.perf_counter()
        with write_session(engine) as session:
            weeks = len(backfill_weeks(session=session, actor=SYSTEM))
        backfill.append(time.perf_counter() - t0)
        log(f"  {ds.backend} {ds.size}: back-fill of {weeks} weeks {backfill[-1]:.1f} s (load {load()})")
    loads.append(load())
    with engine.connect() as conn:
        last = conn.scalar(select(func.max(SnapshotWeek.week_start)))
    for _ in range(runs):
        _forget(engine, since=last)
        t0 = time.perf_counter()
        with write_session(engine) as session:
            close_week(session=session, actor=SYSTEM, week_start=last)
        close.append(time.perf_counter() - t0)
        log(f"  {ds.backend} {ds.size}: close week {last} {close[-1]:.2f} s (load {load()})")
    loads.append(load())
    engine.dispose()
    return [
        {
            "backend": ds.backend,
            "size": ds.size,
            "what": f"back-fill {weeks} weeks",
            "new": _stats(backfill),
            "load": loads,
        },
        {
            "backend": ds.backend,
            "size": ds.size,
            "what": "close one week",
            "new": _stats(close),
            "load": loads,
        },
    ]


def peak_rss(ds: Dataset, which: str) -> dict:
    """Time and VmHWM of one 14-week computation in a fresh interpreter."""
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.snapshots",
            "--step",
            which,
            "--size",
            ds.size,
            "--backend",
            ds.backend,
        ],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def step(ds: Dataset, which: str) -> None:
    """Child: import, note the idle peak, compute 14 weeks, print time and peaks as JSON."""
    from lockstep.db import make_engine
    from lockstep.services import snapshots  # noqa: F401 - what the process holds before any work

    idle = rss_mib()
    seconds, _ = _compute(make_engine(ds.url), which, PROGRAM_WEEKS)
    print(json.dumps({"which": which, "seconds": seconds, "idle_mib": idle, "peak_mib": rss_mib()}))


def main(argv: list[str] | None = None) -> int:
    """Command line."""
    p = bench_parser(__doc__, default_backend="both")
    p.add_argument("--skip-legacy", action="store_true", help="do not time the replaced LAG() computation")
    p.add_argument("--step", choices=["new", "old"], help=Path(__file__).name + " runs itself with this")
    args = p.parse_args(argv)
    if args.step:
        step(Dataset(args.size, args.backend), args.step)
        return 0
    results = []
    for backend in chosen_backends(args.backend):
        ds = ensure(Dataset(args.size, backend))
        engine_url = ds.url
        from lockstep.db import make_engine

        engine = make_engine(engine_url)
        saved = _closed_weeks(engine)
        try:
            if not args.skip_legacy:
                results += compare(ds, args.runs)
            results += earlier_weeks(ds, args.runs)
            results += end_to_end(ds, args.runs)
            for which in ("new",) if args.skip_legacy else ("new", "old"):
                rss = peak_rss(ds, which)
                results.append({"backend": backend, "size": ds.size, "what": f"peak RSS {which}", **rss})
                print(
                    f"  {backend} {ds.size}: {which} 14-week computation in a fresh process: "
                    f"{rss['seconds']:.1f} s, peak RSS {rss['peak_mib']:.0f} MiB (idle {rss['idle_mib']:.0f})"
                )
        finally:
            _restore(engine, *saved)
            engine.dispose()
    for r in results:
        if "new" not in r:
            continue
        line = (
            f"{r['backend']:8} {r['size']:4} {r['what']:22} median {r['new']['median_s']:.2f} s "
            f"(min {r['new']['min_s']:.2f}, max {r['new']['max_s']:.2f}, {r['new']['runs']} runs)"
        )
        if "moved" in r:
            line += f"; {r['moved']:,} of {r['rows']:,} current_state rows moved since"
        if "old" in r:
            line += f"; old {r['old']['median_s']:.2f} s; old/new {r['ratio']:.1f}x"
        if r["what"].startswith("back-fill"):
            line += f"; target < {TARGET_S:.0f} s: {'met' if r['new']['median_s'] < TARGET_S else 'MISSED'}"
        print(line + f"; load {' '.join(r['load'])}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
