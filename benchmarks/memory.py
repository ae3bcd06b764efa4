"""Peak memory of the Streamlit server while it serves the Weekly page on a big database.

    .venv/bin/python -m benchmarks.memory --size 1m --backend sqlite
    .venv/bin/python -m benchmarks.memory --size 100k --backend postgres --runs 5

Starts `streamlit run app.py` on the dataset (its own process group), signs in as the demo
security lead in headless Chromium (Playwright, /usr/bin/chromium; that renders Overview),
opens Weekly from the menu and waits for its charts (menu click to last chart is timed),
while a thread samples
the RSS of the server's whole process tree from /proc every 50 ms. Each run is a fresh
server (so Streamlit's caches start empty, as after a deploy). Reports the server's RSS
when idle and its peak while the page rendered; the median of --runs runs.
Target: peak < 500 MB.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.datasets import Dataset, bench_parser, chosen_backends, ensure  # noqa: E402

TARGET_MB = 500
CHROMIUM = "/usr/bin/chromium"
PAGE_MS = 180_000


def _tree_rss(pid: int) -> int:
    """RSS in bytes of `pid` and all its descendants (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    total, todo = 0, [pid]
    page = os.sysconf("SC_PAGE_SIZE")
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/statm") as f:
                total += int(f.read().split()[1]) * page
        except (OSError, IndexError, ValueError):
            pass
        todo += children.get(p, [])
    return total


class Sampler(threading.Thread):
    """Samples a process tree's RSS until stopped; keeps the peak."""

    def __init__(self, pid: int, every: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.pid, self.every, self.peak, self._halt = pid, every, 0, threading.Event()

    def run(self) -> None:
        """Sample until stopped."""
        while not self._halt.is_set():
            self.peak = max(self.peak, _tree_rss(self.pid))
            self._halt.wait(self.every)

    def stop(self) -> int:
        """Stop and return the peak in bytes."""
        self._halt.set()
        self.join()
        return self.peak


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_healthy(url: str, proc: subprocess.Popen, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as resp:  # noqa: S310 - local
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.25)
    raise RuntimeError("streamlit did not answer its health check")


def one_run(ds: Dataset, log=print) -> dict:
    """Start a server, open Weekly signed in, and return idle and peak RSS (MiB) and seconds to render."""
    from playwright.sync_api import sync_playwright

    from lockstep.demo import demo_password

    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "LOCKSTEP_DATABASE_URL": ds.url, "LOCKSTEP_PUBLIC_URL": url, "PYTHONPATH": str(ROOT)}
    env.pop("LOCKSTEP_DEMO_ROLE", None)
    cmd = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
           "--server.address", "127.0.0.1", "--server.headless", "true",
           "--server.fileWatcherType", "none", "--browser.gatherUsageStats", "false"]  # fmt: skip
    out = ROOT / "benchmarks" / "out"
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "memory-streamlit.log", "wb") as server_log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=server_log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        _wait_healthy(url, proc)
        idle = _tree_rss(proc.pid)
        sampler = Sampler(proc.pid)
        sampler.start()
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_context(viewport={"width": 1400, "height": 2200}).new_page()
            page.set_default_timeout(PAGE_MS)
            # Sign-in lives in the browser session: sign in, then open Weekly from the menu.
            page.goto(f"{url}/")
            page.get_by_role("textbox", name="E-mail").fill("lead@lockstep.example")
            page.get_by_role("textbox", name="Password").fill(demo_password())
            page.get_by_role("button", name="Sign in").click()
            page.get_by_test_id("stSidebar").get_by_text("Signed in as").wait_for()
            t0 = time.perf_counter()
            page.get_by_test_id("stSidebar").get_by_role("link", name="Weekly").click()
            try:
                page.get_by_text("Top risks today").wait_for()
            except Exception:
                page.screenshot(path=str(out / "memory-weekly-failed.png"))
                raise
            page.wait_for_function(
                "() => !document.querySelector('[data-testid=stStatusWidget]')"
                " && document.querySelectorAll('.js-plotly-plot').length >= 3"
            )
            seconds = time.perf_counter() - t0
            page.screenshot(path=str(out / f"memory-weekly-{ds.backend}-{ds.size}.png"))
            browser.close()
        time.sleep(0.5)  # a last sample after the page settled
        peak = sampler.stop()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    mib = 1024 * 1024
    result = {"idle_mib": idle / mib, "peak_mib": peak / mib, "render_s": seconds}
    log(f"  {ds.backend} {ds.size}: idle {result['idle_mib']:.0f} MiB, peak {result['peak_mib']:.0f} MiB, "
        f"Weekly rendered in {seconds:.1f} s")
    return result


def main(argv: list[str] | None = None) -> int:
    """Command line."""
    p = bench_parser(__doc__, default_backend="sqlite")
    args = p.parse_args(argv)
    backends = chosen_backends(args.backend)
    results = []
    for backend in backends:
        ds = ensure(Dataset(args.size, backend))
        _ensure_weeks(ds)
        runs = [one_run(ds) for _ in range(args.runs)]
        peaks = [r["peak_mib"] for r in runs]
        row = {"backend": backend, "size": args.size, "runs": args.runs,
               "median_peak_mib": statistics.median(peaks), "max_peak_mib": max(peaks),
               "median_idle_mib": statistics.median(r["idle_mib"] for r in runs),
               "median_render_s": statistics.median(r["render_s"] for r in runs)}
        results.append(row)
        met = "met" if row["median_peak_mib"] < TARGET_MB else "MISSED"
        print(f"{backend} {args.size}: Streamlit server peak {row['median_peak_mib']:.0f} MiB median "
              f"(max {row['max_peak_mib']:.0f}, idle {row['median_idle_mib']:.0f}) over {args.runs} runs "
              f"serving Weekly; target < {TARGET_MB} MB: {met}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1))
    return 0


def _ensure_weeks(ds: Dataset) -> None:
    from benchmarks.queries import _ensure_weeks as ensure_weeks
    from lockstep.db import make_engine

    engine = make_engine(ds.url)
    ensure_weeks(engine)
    engine.dispose()


if __name__ == "__main__":
    raise SystemExit(main())
