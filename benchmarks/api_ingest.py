"""Events per second through the HTTP API, in batches of 1 and of 1,000, into the 100k (or 1m) dataset.

    .venv/bin/python -m benchmarks.api_ingest --size 100k --backend both
    .venv/bin/python -m benchmarks.api_ingest --size 100k --backend sqlite --singles 300 --batches 10

What a deployment pipeline or a telemetry job pays per event once the program is large.
The dataset (benchmarks/datasets.py) is copied first, so the cached one is left as it was:
the SQLite file to benchmarks/out/api_ingest_<size>.db, the PostgreSQL database to
lockstep_bench_<size>_api_scratch (from the dataset as a template); both are removed at the
end. An admin token is made on the copy, then `python -m lockstep api` serves it (uvicorn,
one process, as `make api` starts it) and one keep-alive HTTP client posts, one request
after the other:

- `--singles` requests of 1 event each, then
- `--batches` requests of 1,000 events each.

Every event moves one e2ee tenant a stage on (eligible -> pilot, pilot -> enabled), just
after the last closed week, each tenant once, so every event is validated against the
tenant's stored history and written (current state, counts, audit), none skipped. Wall time
per request is measured at the client (HTTP, JSON, authentication, validation, the write
and its commit); events/s = events sent / the sum of those times.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import text  # noqa: E402

from benchmarks.datasets import OUT, Dataset, _pg_admin, bench_parser, chosen_backends, ensure  # noqa: E402

NEXT = {"eligible": "pilot", "pilot": "enabled"}
BATCH = 1000


def scratch_copy(ds: Dataset) -> str:
    """A copy of the dataset to write into; returns its URL."""
    if ds.backend == "sqlite":
        src = OUT / f"bench_{ds.size}.db"
        dst = OUT / f"api_ingest_{ds.size}.db"
        for suffix in ("-wal", "-shm"):
            Path(f"{dst}{suffix}").unlink(missing_ok=True)
        shutil.copyfile(src, dst)
        return f"sqlite:///{dst}"
    name = f"lockstep_bench_{ds.size}_api_scratch"
    admin = _pg_admin()
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "lockstep_bench_{ds.size}"'))
    admin.dispose()
    return ds.url.rsplit("/", 1)[0] + f"/{name}"


def drop_copy(ds: Dataset, url: str) -> None:
    """Remove the scratch copy."""
    if ds.backend == "sqlite":
        path = Path(url.removeprefix("sqlite:///"))
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        return
    admin = _pg_admin()
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)'))
    admin.dispose()


def prepare(url: str, n: int) -> tuple[str, list[dict]]:
    """An admin token on the copy, and `n` events each moving a distinct e2ee tenant one stage on."""
    from sqlalchemy import func, select

    from lockstep.clock import week_end
    from lockstep.db import make_engine, write_session
    from lockstep.models import CurrentState, SnapshotWeek, Tenant
    from lockstep.permissions import SYSTEM
    from lockstep.services.api_tokens import add_api_token

    engine = make_engine(url)
    with write_session(engine) as session:
        _, token = add_api_token(session=session, actor=SYSTEM, name="api-benchmark", role="admin")
        last = session.scalar(select(func.max(SnapshotWeek.week_start)))
        at = week_end(last) + timedelta(hours=1) if last else datetime(2020, 6, 29, 12)
        picked = session.execute(
            select(Tenant.external_id, CurrentState.stage_code)
            .join(CurrentState, CurrentState.tenant_id == Tenant.id)
            .where(
                CurrentState.track_code == "e2ee",
                CurrentState.stage_code.in_(list(NEXT)),
                CurrentState.since < at,
            )
            .order_by(Tenant.id)
            .limit(n)
        ).all()
        assert len(picked) == n, f"only {len(picked)} tenants can move"  # and the token is rolled back
    engine.dispose()
    events = [
        {
            "tenant_id": ext,
            "track": "e2ee",
            "stage": NEXT[stage],
            "occurred_at": (at + timedelta(seconds=i)).isoformat(),
            "source": "benchmark",
        }
        for i, (ext, stage) in enumerate(picked)
    ]
    return token, events


def serve(url: str, port: int) -> subprocess.Popen:
    """`python -m lockstep api` on the copy; returns once /health answers 200."""
    import httpx2 as httpx

    env = {**os.environ, "LOCKSTEP_DATABASE_URL": url, "PYTHONPATH": str(ROOT)}
    server = subprocess.Popen(
        [sys.executable, "-m", "lockstep", "api", "--port", str(port), "--log-level", "warning"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(600):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=5).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    server.terminate()
    raise RuntimeError("the API did not start within 120 s")


def post_all(port: int, token: str, batches: list[list[dict]]) -> list[float]:
    """Seconds per request, posting `batches` one after the other over one keep-alive connection."""
    import httpx2 as httpx

    seconds = []
    with httpx.Client(
        base_url=f"http://127.0.0.1:{port}/api/v1", headers={"Authorization": f"Bearer {token}"}, timeout=300
    ) as client:
        for batch in batches:
            t0 = time.perf_counter()
            r = client.post("/events", json=batch)
            seconds.append(time.perf_counter() - t0)
            assert r.status_code == 201 and r.json()["added"] == len(batch), r.text
    return seconds


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main(argv: list[str] | None = None) -> int:
    """Command line."""
    p = bench_parser(__doc__.splitlines()[0], default_backend="both")
    p.add_argument("--singles", type=int, default=300, help="requests of 1 event (default 300)")
    p.add_argument("--batches", type=int, default=10, help="requests of 1,000 events (default 10)")
    args = p.parse_args(argv)
    for backend in chosen_backends(args.backend):
        ds = ensure(Dataset(args.size, backend))
        url = scratch_copy(ds)
        server = None
        try:
            token, events = prepare(url, args.singles + args.batches * BATCH)
            server = serve(url, port := free_port())
            singles = post_all(port, token, [[e] for e in events[: args.singles]])
            rest = events[args.singles :]
            big = post_all(port, token, [rest[i : i + BATCH] for i in range(0, len(rest), BATCH)])
            for label, per, size in (("batches of 1", singles, 1), (f"batches of {BATCH:,}", big, BATCH)):
                rate = size * len(per) / sum(per)
                print(
                    f"{backend:<8} {ds.label}: {label:<17} {len(per):>4} requests, "
                    f"{rate:8,.0f} events/s; per request median {statistics.median(per) * 1000:7.1f} ms "
                    f"(min {min(per) * 1000:.1f}, max {max(per) * 1000:.1f})",
                    flush=True,
                )
        finally:
            if server is not None:
                server.terminate()
                server.wait(timeout=30)
            drop_copy(ds, url)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
