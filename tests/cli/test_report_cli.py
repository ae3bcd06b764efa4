"""`python -m lockstep report ...` through a subprocess: files written, refusals with their exit codes."""

from __future__ import annotations

import io
import os
import shutil
import sqlite3
import subprocess
import sys

import pytest
from pypdf import PdfReader

from lockstep.cli import main
from lockstep.config import ROOT, get_settings
from tests.conftest import IN_CI


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """run(*args) -> CompletedProcess of `python -m lockstep ARGS` on a small demo with closed weeks."""
    tmp = tmp_path_factory.mktemp("report-cli")
    env = {**os.environ, "LOCKSTEP_DATABASE_URL": f"sqlite:///{tmp / 'cli.db'}", "PYTHONPATH": str(ROOT)}

    def _run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "lockstep", *args],
            cwd=tmp, capture_output=True, text=True, env=env, timeout=300,
        )  # fmt: skip

    for setup in (
        ("db", "upgrade"),
        ("plan", "sync", str(ROOT / "plan" / "90-day-plan.yaml")),
        ("demo", "--tenants", "60", "--seed", "2"),
        ("snapshot", "backfill"),
    ):
        done = _run(*setup)
        assert done.returncode == 0, done.stderr
    _run.tmp = tmp
    _run.db = tmp / "cli.db"
    return _run


def test_weekly_report_pdf(run):
    if shutil.which("chromium") is None:
        if IN_CI:
            pytest.fail("the weekly report draws its charts with Chromium: apt-get install chromium")
        pytest.skip("the weekly report draws its charts with Chromium: apt-get install chromium")
    out = run.tmp / "weekly.pdf"
    done = run("report", "weekly", "--week", "2020-W21", "-o", str(out))
    assert done.returncode == 0, done.stderr
    assert f"wrote {out}" in done.stdout
    reader = PdfReader(io.BytesIO(out.read_bytes()))
    assert "Weekly report: Week 21, 2020" in reader.pages[0].extract_text()
    assert sum(len(p.images) for p in reader.pages) == 5


def test_customer_report_pdf(run):
    with sqlite3.connect(run.db) as conn:
        ext, name = conn.execute("SELECT external_id, name FROM tenants ORDER BY name LIMIT 1").fetchone()
    out = run.tmp / "status.pdf"
    done = run("report", "customer", ext, "-o", str(out))
    assert done.returncode == 0, done.stderr
    text = PdfReader(io.BytesIO(out.read_bytes())).pages[0].extract_text()
    assert name in text and ext in text


@pytest.mark.parametrize(
    "args, code, message",
    [
        (("weekly", "--week", "2020-W40", "-o", "w.pdf"), 3, "week 2020-W40 is not closed"),
        (("weekly", "--week", "2020-21", "-o", "w.pdf"), 1, "not an ISO week like 2020-W21"),
        (("weekly", "--week", "2020-W21", "-o", "w.txt"), 1, "must end in .pdf or .html"),
        (("weekly", "--week", "2020-W21", "-o", "no/such/dir/w.pdf"), 1, "does not exist"),
        (("customer", "T9999999", "-o", "s.pdf"), 3, "no tenant with id 'T9999999'"),
        (("customer", "T0000001", "-o", "s.html"), 1, "must end in .pdf"),
    ],
)
def test_report_refusals(run, monkeypatch, capsys, args, code, message):
    # In-process (main() returns the exit code): a subprocess per refusal would add seconds each.
    monkeypatch.setenv("LOCKSTEP_DATABASE_URL", f"sqlite:///{run.db}")
    monkeypatch.chdir(run.tmp)
    get_settings.cache_clear()
    try:
        assert main(["report", *args]) == code
    finally:
        get_settings.cache_clear()
    assert message in capsys.readouterr().err
    assert not (run.tmp / args[-1]).exists()


def test_weekly_report_needs_a_week(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["report", "weekly", "-o", "w.pdf"])
    assert exit_.value.code == 2 and "--week" in capsys.readouterr().err
