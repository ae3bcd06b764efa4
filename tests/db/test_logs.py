"""Structured logs: a JSON line per committed write and sign-in, none for a rollback, no secrets."""

from __future__ import annotations

import io
import json
import logging

import pytest

from lockstep import logs
from lockstep.config import ROOT
from lockstep.db import write_session
from lockstep.demo import load_demo
from lockstep.permissions import SYSTEM, Actor
from lockstep.plan import sync_plan_file
from lockstep.services import auth
from lockstep.services.notes import add_note

pytestmark = pytest.mark.usefixtures("cheap_hashing")
ADMIN = Actor("admin@lockstep.example", "admin")


@pytest.fixture
def log_lines():
    """Capture the lockstep logger's JSON lines; returns a function giving the parsed lines so far."""
    logger = logging.getLogger(logs.LOGGER)
    saved = logger.handlers[:]
    logger.handlers.clear()
    stream = io.StringIO()
    logs.configure_logging(stream)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    logger.handlers[:] = saved


@pytest.fixture
def world(engine):
    sync_plan_file(ROOT / "plan" / "90-day-plan.yaml", engine=engine)
    load_demo(engine=engine, tenants=20, seed=1, actor=SYSTEM)
    return engine


def test_a_committed_write_logs_one_line_without_its_content(world, log_lines):
    before = len(log_lines())
    with write_session(world) as s:
        add_note(session=s, actor=ADMIN, tenant_external_id="T0000001", body="secret plans for the customer")
    lines = log_lines()[before:]
    assert len(lines) == 1
    line = lines[0]
    assert line["event"] == "write" and line["action"] == "note.add" and line["user"] == ADMIN.email
    assert line["entity_type"] and line["ts"] and line["level"] == "info"
    assert "secret plans" not in json.dumps(line)


def test_a_rolled_back_write_logs_nothing(world, log_lines):
    before = len(log_lines())
    with pytest.raises(RuntimeError), write_session(world) as s:
        add_note(session=s, actor=ADMIN, tenant_external_id="T0000001", body="never saved")
        raise RuntimeError("the transaction fails after the audit entry was appended")
    assert log_lines()[before:] == []


def test_sign_in_and_failure_log_without_the_password(world, log_lines):
    from lockstep.demo import DEFAULT_DEMO_PASSWORD

    before = len(log_lines())
    with write_session(world) as s:
        auth.authenticate(session=s, email="admin@lockstep.example", password=DEFAULT_DEMO_PASSWORD)
    with pytest.raises(auth.SignInFailed), write_session(world) as s:
        auth.authenticate(session=s, email="admin@lockstep.example", password="hunter2-wrong")
    lines = log_lines()[before:]
    assert [line["action"] for line in lines] == ["auth.sign_in", "auth.sign_in_failed"]
    assert all(line["event"] == "sign_in" for line in lines)
    text = json.dumps(lines)
    assert DEFAULT_DEMO_PASSWORD not in text and "hunter2" not in text


def test_fields_named_like_secrets_are_redacted_and_long_values_cut():
    out = logs.redact({"password": "p", "api_token": "t", "session_key": "k", "note": "x" * 2000, "n": 3})
    assert out["password"] == out["api_token"] == out["session_key"] == "[redacted]"
    assert len(out["note"]) <= logs._MAX_VALUE + 1 and out["n"] == 3


def test_an_error_escaping_a_page_is_logged_then_raised(log_lines):
    from sqlalchemy.exc import OperationalError

    from lockstep.ui.errors import run_page

    class BrokenPage:
        url_path = "rollout"

        def run(self):
            raise OperationalError(
                "SELECT note FROM tenant_notes WHERE body = ?", ("private",), Exception("disk I/O")
            )

    with pytest.raises(OperationalError):
        run_page(BrokenPage())
    (line,) = log_lines()
    assert line["event"] == "error" and line["level"] == "error" and line["page"] == "rollout"
    assert line["error"] == "OperationalError" and line["message"] == "disk I/O"
    assert "private" not in json.dumps(line)
