"""`token`, `api` and `deliver` end to end: subprocesses on a fresh SQLite file, a real server, real mail."""

from __future__ import annotations

import hashlib
import io
import sqlite3
import subprocess
import sys
import time

import httpx2 as httpx
import pytest
from pypdf import PdfReader

from lockstep.config import ROOT
from tests.smtp import free_port, smtp_server

EXAMPLES = ROOT / "data" / "examples"
PLAN = str(ROOT / "plan" / "90-day-plan.yaml")


def _rows(db, sql: str) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql).fetchall()


def _set_up(run) -> None:
    for args in (
        ("db", "upgrade"),
        ("plan", "sync", PLAN),
        ("import", "tenants", str(EXAMPLES / "tenants.csv")),
    ):
        done = run(*args)
        assert done.returncode == 0, done.stderr


def test_token_add_prints_it_once_and_keeps_only_its_hash(run):
    assert run("db", "upgrade").returncode == 0
    made = run("token", "add", "--name", "deploy-pipeline", "--role", "security_lead")
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    assert token.startswith("lst_") and len(token) == 4 + 43  # 32 random bytes, URL-safe base64
    assert "shown this once" in made.stderr and token not in made.stderr
    assert _rows(run.db, "SELECT name, role, token_hash FROM api_tokens") == [
        ("deploy-pipeline", "security_lead", hashlib.sha256(token.encode()).hexdigest())
    ]
    # The token itself is nowhere in the database, the audit log included.
    assert token.encode() not in run.db.read_bytes()
    assert _rows(run.db, "SELECT action, entity_id FROM audit_log WHERE entity_type = 'api_token'") == [
        ("token.add", "deploy-pipeline")
    ]

    listed = run("token", "list")
    assert "deploy-pipeline" in listed.stdout and "active" in listed.stdout and token not in listed.stdout
    again = run("token", "add", "--name", "deploy-pipeline", "--role", "admin")
    assert again.returncode == 1 and "exists already" in again.stderr

    revoked = run("token", "revoke", "deploy-pipeline")
    assert revoked.returncode == 0 and "revoked" in revoked.stdout
    assert "revoked" in run("token", "list").stdout
    assert run("token", "revoke", "no-such-token").returncode == 3
    assert _rows(run.db, "SELECT action FROM audit_log WHERE entity_type = 'api_token' ORDER BY id") == [
        ("token.add",),
        ("token.revoke",),
    ]


def test_a_managers_token_names_its_manager(run):
    assert run("db", "upgrade").returncode == 0
    no_user = run("token", "add", "--name", "ana", "--role", "account_manager")
    assert no_user.returncode == 1 and "--user EMAIL" in no_user.stderr
    unknown = run("token", "add", "--name", "ana", "--role", "account_manager", "--user", "ana@example.com")
    assert unknown.returncode == 3 and "no user" in unknown.stderr
    added = run(
        "user",
        "add",
        "ana@example.com",
        "--role",
        "account_manager",
        env={"LOCKSTEP_PASSWORD": "a long enough password"},
    )
    assert added.returncode == 0, added.stderr
    made = run("token", "add", "--name", "ana", "--role", "account_manager", "--user", "ana@example.com")
    assert made.returncode == 0, made.stderr
    assert "acting as ana@example.com" in made.stderr
    lead_with_user = run(
        "token", "add", "--name", "x", "--role", "security_lead", "--user", "ana@example.com"
    )
    assert lead_with_user.returncode == 1 and "acts as itself" in lead_with_user.stderr


def test_the_api_command_serves_health_events_and_status(run):
    _set_up(run)
    token = run("token", "add", "--name", "ci", "--role", "admin").stdout.strip()
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "lockstep", "api", "--host", "127.0.0.1", "--port", str(port)],
        env=run.env,
        cwd=run.db.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}/api/v1"
    try:
        for _ in range(150):  # up to 30 s for the server to start on a busy machine
            try:
                health = httpx.get(f"{base}/health", timeout=2)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        else:
            pytest.fail("the API did not start: " + server.stdout.read1().decode())
        assert health.status_code == 200 and health.json()["status"] == "ok"
        auth = {"Authorization": f"Bearer {token}"}
        event = [
            {
                "tenant_id": "acme-001",
                "track": "encryption",
                "stage": "clients_upgraded",
                "occurred_at": "2020-04-20T10:00:00Z",
            }
        ]
        posted = httpx.post(f"{base}/events", json=event, headers=auth, timeout=30)
        assert (posted.status_code, posted.json()) == (201, {"rows": 1, "added": 1, "skipped": 0})
        status = httpx.get(f"{base}/tenants/acme-001/status", headers=auth, timeout=30).json()
        assert {t["track"]: t["stage"] for t in status["tracks"]}["encryption"] == "clients_upgraded"
        assert httpx.get(f"{base}/docs", timeout=10).status_code == 200
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert _rows(run.db, "SELECT actor, source FROM rollout_events") == [("token:ci", "api")]


def test_deliver_weekly_and_overdue_through_a_real_mail_server(run, tmp_path):
    """The real report, charts drawn in Chromium, over SMTP; a second run of the week is refused."""
    _set_up(run)
    assert run("import", "events", str(EXAMPLES / "events.csv")).returncode == 0
    assert run("snapshot", "backfill").returncode == 0
    with smtp_server() as (inbox, port):
        env = {
            "LOCKSTEP_SMTP_HOST": "127.0.0.1",
            "LOCKSTEP_SMTP_PORT": str(port),
            "LOCKSTEP_SMTP_FROM": "lockstep@reports.example",
        }
        sent = run(
            "deliver", "weekly", "--week", "2020-W21", "--to", "exec@example.com,cfo@example.com", env=env
        )
        assert sent.returncode == 0, sent.stderr
        assert (
            "sent 'Lockstep weekly report: Week 21, 2020' to exec@example.com, cfo@example.com" in sent.stdout
        )
        twice = run("deliver", "weekly", "--week", "2020-W21", "--to", "exec@example.com", env=env)
        assert twice.returncode == 1 and "--again" in twice.stderr
        again = run("deliver", "weekly", "--week", "2020-W21", "--to", "exec@example.com", "--again", env=env)
        assert again.returncode == 0, again.stderr

        owners = tmp_path / "owners.csv"
        owners.write_text("owner,email\nCEO (named),ceo@example.com\n")
        overdue = run("deliver", "overdue", "--owners", str(owners), env=env)
        # Owners without an address are named, and the exit code says the run was incomplete.
        assert overdue.returncode == 1 and "no e-mail address for" in overdue.stderr
        assert "sent 'Lockstep: " in overdue.stdout and "to ceo@example.com" in overdue.stdout
        no_server = run(
            "deliver",
            "weekly",
            "--to",
            "exec@example.com",
            "--again",
            env={**env, "LOCKSTEP_SMTP_PORT": str(free_port())},
        )
        assert no_server.returncode == 6 and "could not send" in no_server.stderr
    assert [m.rcpt_tos for m in inbox.messages] == [
        ["exec@example.com", "cfo@example.com"],
        ["exec@example.com"],
        ["ceo@example.com"],
    ]
    [pdf] = inbox.messages[0].message.iter_attachments()
    text = " ".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf.get_content())).pages)
    assert "Weekly report: Week 21, 2020" in " ".join(text.split())
    assert _rows(run.db, "SELECT kind, period FROM deliveries ORDER BY id") == [
        ("weekly", "2020-W21"),
        ("weekly", "2020-W21"),
        ("overdue", "2020-W27"),
    ]


@pytest.mark.parametrize(
    "command", [["api"], ["token", "add"], ["token", "revoke"], ["deliver", "weekly"], ["deliver", "overdue"]]
)
def test_the_new_commands_have_help(run, command):
    result = run(*command, "--help")
    assert result.returncode == 0 and "usage:" in result.stdout
