"""Page benchmark: every page as a user meets it, cold (first visit after a start) and warm.

    .venv/bin/python -m benchmarks.pages --size 100k                       # both datasets, both backends
    .venv/bin/python -m benchmarks.pages --size 1m --dataset zipf --backend sqlite
    .venv/bin/python -m benchmarks.pages --size 100k --only e2ee --roles largest_am

For each dataset (`demo`: benchmarks/datasets.py; `zipf`: benchmarks/zipf.py), backend, role
(admin, the account manager with the most tenants, the one with the fewest) and page the
role may open, one fresh Python process renders the page under streamlit.testing's AppTest:

- cold: the first render in that process, as the first visit after a server start. The
  process has done what `streamlit run serve.py` does at start (import streamlit and
  lockstep.ui.web, lockstep.ui.startup.preload_pages); everything else (the engine, its
  first connection, the queries, the page's own run) is in the timing. Before it starts,
  the database is evicted from the OS page cache: SQLite's file and WAL with
  posix_fadvise(DONTNEED); PostgreSQL's files of that database likewise (the server's own
  shared_buffers, 128 MB here, cannot be emptied without a restart, which would stop other
  users of the server, so whatever they hold stays warm).
- warm: --warm further renders in the same process, each a new visit (a new AppTest
  session) after st.cache_data.clear(); the median is reported.

A render is signed in for real: the parent opens a server-side session for the user and
the child presents its token as the browser's cookie (AppTest carries no cookies). Every
query behind the page is timed where the app calls it (lockstep.ui.data.run_query: open
a session, run the query function, build its frame); every SQL statement is timed too
(SQLAlchemy before/after_cursor_execute) and charged to the lockstep function that ran it.

Prints a table per dataset and backend, then
`slowest page render: N ms (PAGE, ROLE, BACKEND, DATASET)` (warm, the figure the target
of ≤ 300 ms applies to) and the slowest first visit and query.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PAGE_TARGET_MS = 300.0
COLD_TARGET_MS = 1000.0
QUERY_TARGET_MS = 100.0
ROLES = ("admin", "largest_am", "smallest_am")


# --------------------------------------------------------------------------- child: one page


def _child(args) -> int:
    """Render one page cold, then --warm times; print one JSON line."""
    t_start = time.perf_counter()
    # What `streamlit run serve.py` has imported before anybody visits.
    import streamlit as st
    import streamlit.runtime.context as st_context
    from sqlalchemy import event
    from sqlalchemy.engine import Engine
    from streamlit.testing.v1 import AppTest

    import lockstep.ui.web  # noqa: F401 - serve.py imports it at start
    from lockstep.ui.startup import preload_pages

    preload_pages()  # as serve.py does before serving

    cookie = {args.cookie_name: args.token}
    # AppTest has no browser: present the signed-in session's cookie as one would.
    st_context.ContextProxy.cookies = property(lambda self: cookie)

    calls: list[tuple[str, float]] = []
    statements: list[tuple[str, float, str]] = []

    def caller() -> str:
        f = sys._getframe(2)
        while f is not None:
            mod = f.f_globals.get("__name__", "")
            if mod.startswith(("lockstep.queries", "lockstep.services", "lockstep.ui", "lockstep.migrate")):
                return f"{mod.rsplit('.', 1)[-1]}.{f.f_code.co_name}"
            f = f.f_back
        return "?"

    @event.listens_for(Engine, "before_cursor_execute")
    def _before(conn, cursor, statement, parameters, context, executemany):
        conn.info.setdefault("t0", []).append(time.perf_counter())

    @event.listens_for(Engine, "after_cursor_execute")
    def _after(conn, cursor, statement, parameters, context, executemany):
        t0 = conn.info["t0"].pop()
        statements.append((caller(), (time.perf_counter() - t0) * 1000, " ".join(statement.split())[:160]))

    import lockstep.ui.data as data

    original = data.run_query

    def timed_run_query(fn, /, **kwargs):
        t0 = time.perf_counter()
        try:
            return original(fn, **kwargs)
        finally:
            calls.append(
                (f"{fn.__module__.rsplit('.', 1)[-1]}.{fn.__qualname__}", (time.perf_counter() - t0) * 1000)
            )

    for mod in list(sys.modules.values()):
        if (
            getattr(mod, "__name__", "").startswith("lockstep.ui")
            and getattr(mod, "run_query", None) is original
        ):
            mod.run_query = timed_run_query
    # A server discovers Streamlit components once, at start; AppTest would scan every
    # installed package's metadata again for each new session (0.4 s here), so share one.
    from streamlit.components.v2.component_manager import BidiComponentManager

    components = BidiComponentManager()
    components.discover_and_register_components(start_file_watching=False)
    ready = time.perf_counter() - t_start

    def render() -> dict:
        calls.clear()
        statements.clear()
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=900)
        at._bidi_component_manager = components
        if args.page != "overview":
            at.switch_page(f"pages/{args.page}.py")
        t0 = time.perf_counter()
        at.run()
        ms = (time.perf_counter() - t0) * 1000
        errors = [str(e.value)[:300] for e in at.exception]
        shown = [str(t.value) for t in at.title]
        by_fn: dict[str, float] = {}
        for name, q_ms in calls:
            by_fn[name] = max(by_fn.get(name, 0.0), q_ms)
        worst_stmt = max(statements, key=lambda s: s[1], default=("", 0.0, ""))
        return {
            "ms": ms,
            "errors": errors,
            "titles": shown,
            "queries": by_fn,
            "statements": len(statements),
            "slowest_statement": list(worst_stmt),
        }

    if args.profile:
        import cProfile
        import pstats

        # The script runs in its own thread: profile that thread's run.
        from streamlit.runtime.scriptrunner.script_runner import ScriptRunner

        profiles = []
        run_script = ScriptRunner._run_script

        def profiled(self, rerun_data):
            prof = cProfile.Profile()
            profiles.append(prof)
            prof.runcall(run_script, self, rerun_data)

        ScriptRunner._run_script = profiled
        print(f"cold {render()['ms']:.0f} ms", file=sys.stderr)
        if args.profile == "warm":
            st.cache_data.clear()
            print(f"warm {render()['ms']:.0f} ms", file=sys.stderr)
        pstats.Stats(profiles[-1], stream=sys.stderr).sort_stats("cumulative").print_stats(70)
        return 0
    cold = render()
    warm = []
    for _ in range(args.warm):
        st.cache_data.clear()
        warm.append(render())
    print("RESULT " + json.dumps({"ready_s": ready, "cold": cold, "warm": warm}))
    return 0


# --------------------------------------------------------------------------- parent


def _datasets(name: str, size: str, backend: str):
    if name == "demo":
        from benchmarks.datasets import Dataset, ensure

        return ensure(Dataset(size, backend))
    from benchmarks.zipf import ZipfDataset, ensure

    return ensure(ZipfDataset(size, backend))


def _users(engine) -> dict[str, str]:
    """Role key -> e-mail: the admin, and the account-manager users with the most and the fewest tenants."""
    from sqlalchemy import func, select

    from lockstep.models import StageCount, User

    with engine.connect() as conn:
        managers = {
            e
            for (e,) in conn.execute(
                select(User.email).where(User.role == "account_manager", User.is_active.is_(True))
            )
        }
        sizes = dict(
            conn.execute(
                select(StageCount.account_manager, func.sum(StageCount.n))
                .where(StageCount.track_code == "encryption")
                .group_by(StageCount.account_manager)
            ).all()
        )
    have = sorted((int(sizes.get(m, 0)), m) for m in managers if sizes.get(m))
    return {
        "admin": "admin@lockstep.example",
        "largest_am": have[-1][1],
        "smallest_am": have[0][1],
        "_sizes": {"largest_am": have[-1][0], "smallest_am": have[0][0]},
    }


def _token(engine, email: str) -> str:
    from lockstep.db import write_session
    from lockstep.services import sessions
    from lockstep.services.auth import actor_for
    from lockstep.services.users import get_user

    with write_session(engine) as s:
        user = get_user(session=s, email=email)
        code = sessions.start_session(session=s, actor=actor_for(user), method="password")
        return sessions.activate_session(session=s, code=code).token


def _evict(ds, url: str) -> str:
    """Drop the database's files from the OS page cache; says what was done."""
    paths: list[Path] = []
    if url.startswith("sqlite"):
        db = Path(url.split("///", 1)[1])
        paths = [p for p in (db, Path(f"{db}-wal")) if p.exists()]
    else:
        from sqlalchemy import create_engine, text

        eng = create_engine(url)
        with eng.connect() as conn:
            root = conn.scalar(text("SHOW data_directory"))
            oid = conn.scalar(text("SELECT oid FROM pg_database WHERE datname = current_database()"))
        eng.dispose()
        base = Path(root) / "base" / str(oid)
        try:
            paths = [p for p in base.iterdir() if p.is_file()]
        except PermissionError:
            return "PostgreSQL files not readable: OS cache not dropped"
    n = 0
    for p in paths:
        try:
            fd = os.open(p, os.O_RDONLY)
        except OSError:
            continue
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            n += 1
        finally:
            os.close(fd)
    return f"dropped {n} file(s) from the OS cache"


def _pages_for(role: str) -> list[str]:
    from lockstep.access import pages_for

    return pages_for("account_manager" if role.endswith("_am") else role)


def run(
    dataset: str, size: str, backend: str, *, warm: int, roles, only: str | None, log=print
) -> list[dict]:
    """Every page for every role on one dataset/backend; one dict per (role, page)."""
    from benchmarks.queries import _ensure_weeks
    from lockstep.db import make_engine
    from lockstep.ui.web import session_cookie_name

    ds = _datasets(dataset, size, backend)
    engine = make_engine(ds.url)
    _ensure_weeks(engine)  # the demo dataset is built without closed weeks; Weekly needs them
    users = _users(engine)
    sizes = users.pop("_sizes")
    log(
        f"{dataset} {size} {backend}: largest manager {users['largest_am']} "
        f"({sizes['largest_am']:,} tenants), "
        f"smallest {users['smallest_am']} ({sizes['smallest_am']:,})"
    )
    out = []
    env = {**os.environ, "LOCKSTEP_DATABASE_URL": ds.url, "LOCKSTEP_ENV": "test"}
    for role in roles:
        for page in _pages_for(role):
            if only and only != page:
                continue
            token = _token(engine, users[role])
            engine.dispose()
            evicted = _evict(ds, ds.url)
            proc = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "benchmarks.pages",
                    "--child",
                    "--page",
                    page,
                    "--token",
                    token,
                    "--cookie-name",
                    session_cookie_name(),
                    "--warm",
                    str(warm),
                ],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
            )
            line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
            if line is None:
                log(f"  {page} {role}: child failed\n{proc.stderr[-3000:]}")
                out.append(
                    {
                        "dataset": dataset,
                        "size": size,
                        "backend": backend,
                        "role": role,
                        "page": page,
                        "failed": proc.stderr[-500:],
                    }
                )
                continue
            r = json.loads(line[7:])
            rec = _summarise(r, dataset=dataset, size=size, backend=backend, role=role, page=page)
            rec["evicted"] = evicted
            out.append(rec)
            flag = ""
            if (
                rec["warm_ms"] > PAGE_TARGET_MS
                or rec["cold_ms"] > COLD_TARGET_MS
                or rec["query_ms"] > QUERY_TARGET_MS
            ):
                flag = "  MISS"
            if rec["errors"]:
                flag += "  ERROR: " + rec["errors"][0][:120]
            log(
                f"  {backend:8} {page:9} {role:11} warm {rec['warm_ms']:7.0f} ms"
                f"  cold {rec['cold_ms']:7.0f} ms"
                f"  slowest query {rec['query_ms']:6.0f} ms {rec['query']:38}"
                f" (cold {rec['cold_query_ms']:.0f} ms"
                f" {rec['cold_query']}){flag}"
            )
    engine.dispose()
    return out


def _summarise(r: dict, **where) -> dict:
    warm = r["warm"] or [r["cold"]]
    per_fn: dict[str, list[float]] = {}
    for w in warm:
        for name, ms in w["queries"].items():
            per_fn.setdefault(name, []).append(ms)
    medians = {k: statistics.median(v) for k, v in per_fn.items()}
    q, q_ms = max(medians.items(), key=lambda kv: kv[1], default=("", 0.0))
    cq, cq_ms = max(r["cold"]["queries"].items(), key=lambda kv: kv[1], default=("", 0.0))
    stmt = max((w["slowest_statement"] for w in warm), key=lambda s: s[1])
    errors = sorted({e for w in [r["cold"], *warm] for e in w["errors"]})
    return {
        **where,
        "warm_ms": statistics.median(w["ms"] for w in warm),
        "cold_ms": r["cold"]["ms"],
        "query": q,
        "query_ms": q_ms,
        "cold_query": cq,
        "cold_query_ms": cq_ms,
        "slowest_statement": stmt,
        "queries": medians,
        "errors": errors,
        "ready_s": r["ready_s"],
    }


def main(argv: list[str] | None = None) -> int:
    """Command line."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", choices=["100k", "1m"], default="100k")
    p.add_argument("--dataset", choices=["demo", "zipf", "both"], default="both")
    p.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    p.add_argument("--roles", default=",".join(ROLES), help="comma-separated: " + ", ".join(ROLES))
    p.add_argument("--only", help="only this page")
    p.add_argument("--warm", type=int, default=3, help="warm renders after the cold one (median reported)")
    p.add_argument("--json", type=Path, help="write the results here")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--profile", choices=["cold", "warm"], help=argparse.SUPPRESS)
    p.add_argument("--page", help=argparse.SUPPRESS)
    p.add_argument("--token", help=argparse.SUPPRESS)
    p.add_argument("--cookie-name", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        return _child(args)
    from benchmarks.datasets import chosen_backends

    print(f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")
    results = []
    for dataset in ["demo", "zipf"] if args.dataset == "both" else [args.dataset]:
        for backend in chosen_backends(args.backend):
            results += run(
                dataset, args.size, backend, warm=args.warm, roles=args.roles.split(","), only=args.only
            )
    print(f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1))
    ok = [r for r in results if "failed" not in r]
    failed = len(results) - len(ok)
    if ok:
        misses = [r for r in ok if r["warm_ms"] > PAGE_TARGET_MS]
        cold_misses = [r for r in ok if r["cold_ms"] > COLD_TARGET_MS]
        q_misses = [r for r in ok if r["query_ms"] > QUERY_TARGET_MS]
        print(
            f"{len(ok)} page renders: {len(misses)} over {PAGE_TARGET_MS:.0f} ms warm, "
            f"{len(cold_misses)} over "
            f"{COLD_TARGET_MS:.0f} ms cold, {len(q_misses)} with a query over {QUERY_TARGET_MS:.0f} ms warm"
            + (f"; {failed} failed" if failed else "")
        )
        w = max(ok, key=lambda r: r["warm_ms"])
        c = max(ok, key=lambda r: r["cold_ms"])
        q = max(ok, key=lambda r: r["query_ms"])
        print(
            f"slowest first visit: {c['cold_ms']:.0f} ms "
            f"({c['page']}, {c['role']}, {c['backend']}, {c['dataset']})"
        )
        print(
            f"slowest query behind a page: {q['query_ms']:.0f} ms ({q['query']}, {q['page']}, {q['role']}, "
            f"{q['backend']}, {q['dataset']})"
        )
        print(
            f"slowest page render: {w['warm_ms']:.0f} ms "
            f"({w['page']}, {w['role']}, {w['backend']}, {w['dataset']})"
        )
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
