"""The command line end to end, through a subprocess, on a fresh SQLite file."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from lockstep.config import ROOT

EXAMPLES = ROOT / "data" / "examples"


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


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [
        ('title_note: "a\x00b"\n', "character U+0000 (NUL)"),
        ('note: "\x1b[31mred"\n', "character U+001B (ESC)"),
        ("".join(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]\n" for i in range(1, 10)), "YAML aliases"),
    ],
    ids=["NUL", "ESC", "billion-laughs"],
)
def test_hostile_plan_files_get_the_report_and_exit_1(run, tmp_path, prefix, expected):
    bad = tmp_path / "plan.yaml"
    bomb_root = "a0: &a0 lol\n" if "a1:" in prefix else ""
    bad.write_text(bomb_root + prefix + (ROOT / "plan" / "90-day-plan.yaml").read_text())
    result = run("plan", "validate", str(bad))
    assert result.returncode == 1, result.stderr
    assert "plan.yaml:" in result.stderr and expected in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("value", ["365", "0", "abc"])
def test_a_bad_setting_stops_every_command_with_its_name_and_range(run, value):
    result = run(
        "plan", "validate", str(ROOT / "plan" / "90-day-plan.yaml"), env={"LOCKSTEP_SHARE_LINK_DAYS": value}
    )
    assert result.returncode == 2
    assert f"error: LOCKSTEP_SHARE_LINK_DAYS='{value}'" in result.stderr
    assert "from 1 to 90" in result.stderr and "Traceback" not in result.stderr


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


def test_example_events_on_a_demo_database_exit_1_naming_the_unknown_tenants(run, tmp_path):
    """Issue #12: the demo's tenants are not the examples' ones; a report, not a traceback."""
    assert run("db", "upgrade").returncode == 0
    assert run("plan", "sync", str(ROOT / "plan" / "90-day-plan.yaml")).returncode == 0
    assert run("demo", "--tenants", "50", "--seed", "1").returncode == 0
    events_before = _count(run.db, "rollout_events")
    out = run("import", "events", str(EXAMPLES / "events.csv"), "--errors-out", "errors.csv")
    assert out.returncode == 1
    assert "Traceback" not in out.stderr
    for tenant in ("acme-001", "globex-002", "initech-003", "hooli-005"):
        assert f"no tenant with id '{tenant}'" in out.stderr
    assert _count(run.db, "rollout_events") == events_before
    lines = (tmp_path / "errors.csv").read_text(encoding="utf-8-sig").splitlines()
    assert lines[0] == "row,column,value,reason,kind" and len(lines) == 1 + 9

    directory = run("import", "events", str(tmp_path))
    assert directory.returncode == 1 and "is a directory" in directory.stderr
    assert "Traceback" not in directory.stderr
    bad_format = run("import", "events", str(EXAMPLES / "events.csv"), "--date-format", "%Y")
    assert bad_format.returncode == 1 and "must name the day" in bad_format.stderr


def test_import_from_xlsx_with_a_day_first_date(run, tmp_path):
    from openpyxl import Workbook

    assert run("db", "upgrade").returncode == 0
    assert run("plan", "sync", str(ROOT / "plan" / "90-day-plan.yaml")).returncode == 0
    assert run("import", "tenants", str(EXAMPLES / "tenants.csv")).returncode == 0
    wb = Workbook()
    wb.active.title = "Week 21"
    wb.active.append(["tenant_id", "track", "stage", "occurred_at"])
    wb.active.append(["acme-001", "encryption", "clients_upgraded", "20/05/2020"])
    wb.save(tmp_path / "events.xlsx")
    refused = run("import", "events", "events.xlsx")
    assert refused.returncode == 1 and "--date-format %d/%m/%Y (day first)" in refused.stderr
    ok = run("import", "events", "events.xlsx", "--sheet", "Week 21", "--date-format", "%d/%m/%Y")
    assert ok.returncode == 0, ok.stderr
    with sqlite3.connect(run.db) as conn:
        assert conn.execute("SELECT occurred_at FROM rollout_events").fetchone()[0].startswith("2020-05-20")
    again = run("import", "events", "events.xlsx", "--date-format", "%d/%m/%Y")
    assert again.returncode == 0 and "added 0" in again.stdout
