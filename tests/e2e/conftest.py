"""Browser tests: one demo database, one Streamlit server and one Chromium for the whole session.

Chromium is Debian's (/usr/bin/chromium): Playwright drives it over CDP, and nothing is
downloaded. Without it the tests skip locally and fail in CI (CI=true), where .ci/run
installs it. Each test opens fresh browser contexts (a context is a new Streamlit
session, so it starts signed out); every page a fixture opens is watched for console
errors and uncaught exceptions, and a test that saw one fails with the list.
Screenshots land in test-artifacts/e2e/ (gitignored), for people to look at.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from playwright.sync_api import expect

from lockstep.config import ROOT
from lockstep.db import make_engine, write_session
from lockstep.demo import DEFAULT_DEMO_PASSWORD, DEMO_USERS
from lockstep.migrate import upgrade
from lockstep.permissions import SYSTEM

IN_CI = os.environ.get("CI", "").lower() == "true"
CHROMIUM = os.environ.get("LOCKSTEP_E2E_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
DEMO_TENANTS, DEMO_SEED = 300, 5
PASSWORD = os.environ.get("LOCKSTEP_DEMO_PASSWORD") or DEFAULT_DEMO_PASSWORD
# The first demo user of each role (dana.lee@ for account managers).
EMAILS = {role: email for email, role, _ in reversed(DEMO_USERS)}
ARTIFACTS = ROOT / "test-artifacts" / "e2e"
# Tall enough for the longest page: Streamlit scrolls inside its own container, so a page
# screenshot shows only what fits the viewport (and resizing it makes tables repaint blank).
VIEWPORT = {"width": 1400, "height": 3600}
SERVER_START_SECONDS = 90
# Timeouts for Playwright's auto-waiting, in ms: a page run, and a report drawn in the browser.
PAGE_MS, REPORT_MS = 30_000, 120_000

# Benign console noise, and why. Streamlit's frontend, opened at a page's own address
# (/plan), first asks /plan/_stcore/health and /plan/_stcore/host-config in case the app
# is served under that base path; the 404s are expected, and it then uses the root.
BENIGN_CONSOLE = [re.compile(r"^https?://[^/]+/[^/]+/_stcore/(health|host-config)$")]

expect.set_options(timeout=PAGE_MS)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def build_e2e_database(url: str) -> None:
    """What `make run` does, smaller: migrate, sync the plan, load the demo, close every ended week."""
    from lockstep.demo import load_demo
    from lockstep.plan import sync_plan_file
    from lockstep.services.snapshots import backfill_weeks

    upgrade(url)
    engine = make_engine(url)
    sync_plan_file(ROOT / "plan" / "90-day-plan.yaml", engine=engine)
    # Hostile names too: every page must show them as text and keep them from running in CSVs.
    load_demo(engine=engine, tenants=DEMO_TENANTS, seed=DEMO_SEED, actor=SYSTEM, hostile_names=True)
    with write_session(engine) as session:
        backfill_weeks(session=session, actor=SYSTEM)
    engine.dispose()


@pytest.fixture(scope="session")
def chromium_path() -> str:
    """Debian's Chromium, or a skip (a failure in CI) saying how to get it."""
    if not Path(CHROMIUM).exists():
        reason = f"Chromium not found at {CHROMIUM}: apt-get install chromium (or set LOCKSTEP_E2E_CHROMIUM)"
        if IN_CI:
            pytest.fail(reason)
        pytest.skip(reason)
    return CHROMIUM


@pytest.fixture(scope="session")
def e2e_db_url(tmp_path_factory, chromium_path) -> str:
    """A demo database for the browser tests (built only when a browser is there to use it)."""
    path = tmp_path_factory.mktemp("e2e") / "e2e.db"
    url = f"sqlite:///{path}"
    build_e2e_database(url)
    return url


@pytest.fixture(scope="session")
def e2e_engine(e2e_db_url):
    """Engine over the browser tests' database, for independent SQL checks."""
    engine = make_engine(e2e_db_url)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def app_url(e2e_db_url, tmp_path_factory) -> str:
    """Base URL of `streamlit run app.py` over the e2e database; stopped after the session."""
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    log_path = tmp_path_factory.mktemp("e2e-server") / "streamlit.log"
    env = {
        **os.environ,
        "LOCKSTEP_DATABASE_URL": e2e_db_url,
        "LOCKSTEP_PUBLIC_URL": base,
        "LOCKSTEP_ENV": "test",
        "PYTHONPATH": str(ROOT),
    }
    env.pop("LOCKSTEP_DEMO_ROLE", None)
    cmd = [
        sys.executable, "-m", "streamlit", "run", "serve.py",
        "--server.port", str(port), "--server.address", "127.0.0.1", "--server.headless", "true",
        "--server.fileWatcherType", "none", "--browser.gatherUsageStats", "false",
    ]  # fmt: skip
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_healthy(proc, f"{base}/_stcore/health", log_path)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _wait_healthy(proc: subprocess.Popen, health: str, log_path: Path) -> None:
    """Poll the health endpoint until it answers "ok"; fail with the server log if it dies or never does."""
    deadline = time.monotonic() + SERVER_START_SECONDS
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(health, timeout=2) as resp:  # noqa: S310 - our own local server
                if resp.status == 200:
                    return
        except OSError:
            pass
        # Waiting on the process paces the polls and notices at once if the server exits.
        try:
            code = proc.wait(timeout=0.25)
        except subprocess.TimeoutExpired:
            continue
        pytest.fail(f"streamlit exited with {code} before answering:\n{log_path.read_text()[-4000:]}")
    pytest.fail(
        f"streamlit did not answer {health} within {SERVER_START_SECONDS}s:\n{log_path.read_text()[-4000:]}"
    )


@pytest.fixture(scope="session")
def browser(chromium_path):
    """One Chromium for the whole session."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        yield b
        b.close()


class ConsoleWatch:
    """Console errors and uncaught exceptions of every page opened in a test, minus benign noise."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def attach(self, page) -> None:
        """Start watching `page`."""
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.problems.append(f"{page.url}: uncaught {exc}"))

    def _console(self, msg) -> None:
        if msg.type != "error":
            return
        where = (msg.location or {}).get("url", "")
        if any(p.match(where) for p in BENIGN_CONSOLE):
            return
        self.problems.append(f"{where}: {msg.text}")


@pytest.fixture
def new_page(browser, app_url):
    """new_page() -> a page in a fresh context (a new, signed-out session); console errors fail the test."""
    watch = ConsoleWatch()
    contexts = []

    def _open():
        ctx = browser.new_context(viewport=VIEWPORT, accept_downloads=True)
        ctx.set_default_timeout(PAGE_MS)
        contexts.append(ctx)
        page = ctx.new_page()
        watch.attach(page)
        return page

    yield _open
    for ctx in contexts:
        ctx.close()
    if watch.problems:
        pytest.fail("browser console errors:\n" + "\n".join(watch.problems))


# True once every table's canvas has something on it (its grey header at least).
TABLES_PAINTED = """() => [...document.querySelectorAll('[data-testid=stDataFrame]')].every(df =>
  [...df.querySelectorAll('canvas')].some(c => {
    if (!c.width || !c.height) return false;
    const d = c.getContext('2d').getImageData(0, 0, c.width, Math.min(c.height, 40)).data;
    for (let i = 0; i < d.length; i += 4) if (d[i + 3] && (d[i] < 250 || d[i + 1] < 250)) return true;
    return false;
  }))"""


def wait_idle(page) -> None:
    """Wait until the Streamlit script run has finished (the app marks its state on stApp)."""
    expect(page.get_by_test_id("stApp")).to_have_attribute("data-test-script-state", "notRunning")


def screenshot(page, name: str) -> Path:
    """Save the page, cut to its content, as test-artifacts/e2e/<name>.png."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    wait_idle(page)
    # Elements whose code is still loading show as skeletons; tables then paint their canvases.
    expect(page.locator("[data-testid^=stSkeleton]")).to_have_count(0)
    page.wait_for_function(TABLES_PAINTED)
    bottom = page.evaluate(
        "() => Math.ceil(document.querySelector('[data-testid=stMainBlockContainer]')"
        "?.getBoundingClientRect().bottom || 0)"
    )
    size = page.viewport_size
    height = min(max(bottom, 800), size["height"])
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), clip={"x": 0, "y": 0, "width": size["width"], "height": height})
    return path


def sign_in(page, app_url: str, role: str, path: str = "") -> None:
    """Open `path`, sign in as the demo user of `role`, and wait for the signed-in sidebar."""
    page.goto(f"{app_url}/{path}")
    page.get_by_role("textbox", name="E-mail").fill(EMAILS[role])
    page.get_by_role("textbox", name="Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_test_id("stSidebar").get_by_text(f"Signed in as {EMAILS[role]}")).to_be_visible()
