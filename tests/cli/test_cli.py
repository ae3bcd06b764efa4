"""The command line end to end, through a subprocess, on a fresh SQLite file."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from lockstep.config import ROOT

EXAMPLES = ROOT / "data" / "examples"


@pytest.fixture
def run(tmp_path):
    """run(*args, env=None) -> CompletedProcess of `python -m lockstep ARGS` on a temp database."""
    db = tmp_path / "cli.db"
    base_env = {**os.environ, "LOCKSTEP_DATABASE_URL": f"sqlite:///{db}", "PYTHONPATH": str(ROOT)}

    def _run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "lockstep", *args],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            env={**base_env, **(env or {})},
            timeout=300,
        )

    _run.db = db
    return _run


def _count(db: Path, table: str) -> int:
    with sqlite3.connect(db) as conn:
        return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def test_set_up_import_and_verify(run, tmp_path):
    assert run("db", "upgrade").returncode == 0
    plan = str(ROOT / "plan" / "90-day-plan.yaml")
    ok = run("plan", "validate", plan)
    assert ok.returncode == 0 and "valid" in ok.stdout
    assert run("plan", "sync", plan).returncode == 0
    again = run("plan", "sync", plan)
    assert "0 added, 0 updated, 28 unchanged" in again.stdout

    tenants = run("import", "tenants", str(EXAMPLES / "tenants.csv"))
    assert tenants.returncode == 0, tenants.stderr
    assert "added 5" in tenants.stdout
    events = run("import", "events", str(EXAMPLES / "events.csv"))
    assert events.returncode == 0, events.stderr
    n_events = _count(run.db, "rollout_events")
    assert n_events == 9
    repeat = run("import", "events", str(EXAMPLES / "events.csv"))
    assert repeat.returncode == 0 and "added 0" in repeat.stdout
    assert _count(run.db, "rollout_events") == n_events

    bad = tmp_path / "bad.csv"
    bad.write_text(
        "tenant_id,track,stage,occurred_at,source,note\n"
        "acme-001,encryption,gcm_enforced,2020-05-30,,\n"
        "nobody-999,encryption,gcm_enabled,2020-05-01,,\n"
        "acme-001,encryption,gcm_enabled,not-a-date,,\n",
        encoding="utf-8",
    )
    rejected = run("import", "events", str(bad))
    assert rejected.returncode == 1
    assert "row 3" in rejected.stderr and "nobody-999" in rejected.stderr
    assert "row 4" in rejected.stderr and "not-a-date" in rejected.stderr
    assert _count(run.db, "rollout_events") == n_events

    user = run(
        "user",
        "add",
        "lead@example.com",
        "--role",
        "security_lead",
        env={"LOCKSTEP_PASSWORD": "correct horse battery"},
    )
    assert user.returncode == 0, user.stderr
    head = run("audit", "head").stdout.strip()
    assert len(head) == 64 and int(head, 16) >= 0
    verified = run("audit", "verify", "--head", head)
    assert verified.returncode == 0 and "intact" in verified.stdout

    with sqlite3.connect(run.db) as conn:
        conn.execute("UPDATE audit_log SET actor = 'someone-else' WHERE id = 2")
    broken = run("audit", "verify")
    assert broken.returncode == 1 and "entry 2 was edited" in broken.stderr


def test_bad_plan_names_the_file_and_exits_1(run, tmp_path):
    bad = tmp_path / "plan.yaml"
    bad.write_text((ROOT / "plan" / "90-day-plan.yaml").read_text().replace("id: Z14", "id: Z13", 1))
    result = run("plan", "validate", str(bad))
    assert result.returncode == 1
    assert "plan.yaml" in result.stderr and "Z13" in result.stderr and "duplicate" in result.stderr.lower()


def test_demo_is_deterministic_and_if_empty_is_a_no_op(run):
    run("db", "upgrade")
    run("plan", "sync", str(ROOT / "plan" / "90-day-plan.yaml"))
    first = run("demo", "--tenants", "60", "--seed", "3")
    assert first.returncode == 0, first.stderr
    events = _count(run.db, "rollout_events")
    assert _count(run.db, "tenants") == 60 and events > 60
    second = run("demo", "--tenants", "60", "--seed", "3", "--if-empty")
    assert second.returncode == 0 and "nothing loaded" in second.stdout
    assert _count(run.db, "rollout_events") == events


def test_errors_are_plain_and_exit_codes_meaningful(run):
    missing_db = run("plan", "sync", str(ROOT / "plan" / "90-day-plan.yaml"))
    assert missing_db.returncode == 5 and "db upgrade" in missing_db.stderr
    assert "Traceback" not in missing_db.stderr
    run("db", "upgrade")
    assert run("import", "tenants", "no-such-file.csv").returncode == 3
    assert run("frobnicate").returncode == 2
    no_password = run("user", "add", "x@example.com", "--role", "admin")
    assert no_password.returncode == 1 and "LOCKSTEP_PASSWORD" in no_password.stderr


@pytest.mark.parametrize(
    "command",
    [
        [],
        ["db"],
        ["db", "upgrade"],
        ["plan", "sync"],
        ["import", "events"],
        ["demo"],
        ["user", "add"],
        ["audit", "verify"],
        ["snapshot", "close-week"],
    ],
)
def test_every_command_has_help(run, command):
    result = run(*command, "--help")
    assert result.returncode == 0 and "usage:" in result.stdout
