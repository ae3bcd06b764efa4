"""POST /api/v1/events: every answer, on SQLite and PostgreSQL, read back from the database."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select

from lockstep.api import app as api_module
from lockstep.db import read_session, write_session
from lockstep.errors import ImportRejected
from lockstep.models import AuditEntry, CurrentState, RolloutEvent, Tenant, User
from lockstep.permissions import SYSTEM
from lockstep.services.api_tokens import revoke_api_token
from lockstep.services.imports import import_events
from tests.api.conftest import bearer, table_fingerprint
from tests.builders import MANAGERS

URL = "/api/v1/events"
# add_tenants(seed=1): t1-00000 free, t1-00001 pro, t1-00002 business, ...
FREE, PRO, BUSINESS = "t1-00000", "t1-00001", "t1-00002"
GOOD = [
    {
        "tenant_id": PRO,
        "track": "encryption",
        "stage": "clients_upgraded",
        "occurred_at": "2020-04-10T09:00:00Z",
    },
    {
        "tenant_id": PRO,
        "track": "encryption",
        "stage": "gcm_enabled",
        "occurred_at": "2020-04-20",
        "source": "pipeline",
        "note": "rolled out",
    },
    {"tenant_id": BUSINESS, "track": "e2ee", "stage": "pilot", "occurred_at": "2020-05-01 14:30"},
]
# One bad value of each kind the CSV rules know, plus the JSON-only ones (not text, unknown field).
BAD = [
    {"tenant_id": PRO, "track": "encryption", "stage": "clients_upgraded", "occurred_at": "2020-04-10"},
    {"tenant_id": "nobody", "track": "encryption", "stage": "gcm_enabled", "occurred_at": "2020-04-11"},
    {"tenant_id": PRO, "track": "encryption", "stage": "warp_speed", "occurred_at": "2020-04-12"},
    {"tenant_id": FREE, "track": "e2ee", "stage": "pilot", "occurred_at": "2020-04-13"},
    {"tenant_id": PRO, "track": "encryption", "stage": "gcm_enabled", "occurred_at": "2020-02-30"},
    {"tenant_id": PRO, "track": "encryption", "stage": "", "occurred_at": "2020-04-14"},
]


def _events(engine) -> list[tuple]:
    with read_session(engine) as s:
        return s.execute(
            select(
                Tenant.external_id,
                RolloutEvent.track_code,
                RolloutEvent.stage_code,
                RolloutEvent.actor,
                RolloutEvent.source,
                RolloutEvent.note,
            )
            .join(Tenant, Tenant.id == RolloutEvent.tenant_id)
            .order_by(RolloutEvent.occurred_at)
        ).all()


def _audit(engine) -> list[tuple]:
    """(actor, action, after) of every audit entry, oldest first."""
    with read_session(engine) as s:
        return s.execute(
            select(AuditEntry.actor, AuditEntry.action, AuditEntry.after).order_by(AuditEntry.id)
        ).all()


def _no_trace(response) -> None:
    assert "Traceback" not in response.text and 'File "' not in response.text


# --- 201 / 200 ------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["security_lead", "admin"])
def test_events_are_recorded_as_the_token(world, role):
    r = world.client.post(URL, json=GOOD, headers=bearer(world.tokens[role]))
    assert r.status_code == 201, r.text
    assert r.json() == {"rows": 3, "added": 3, "skipped": 0}
    assert _events(world.engine) == [
        (PRO, "encryption", "clients_upgraded", f"token:{role}-bot", "api", ""),
        (PRO, "encryption", "gcm_enabled", f"token:{role}-bot", "pipeline", "rolled out"),
        (BUSINESS, "e2ee", "pilot", f"token:{role}-bot", "api", ""),
    ]
    with read_session(world.engine) as s:
        pro_state = s.scalar(
            select(CurrentState.stage_code)
            .join(Tenant, Tenant.id == CurrentState.tenant_id)
            .where(Tenant.external_id == PRO, CurrentState.track_code == "encryption")
        )
    assert pro_state == "gcm_enabled"
    actor, action, after = _audit(world.engine)[-1]
    assert (actor, action) == (f"token:{role}-bot", "import.events")
    assert after["file"] == f"api:{role}-bot" and after["added"] == 3


def test_sending_the_same_events_again_adds_nothing(world):
    first = world.client.post(URL, json=GOOD, headers=bearer(world.tokens["security_lead"]))
    assert first.status_code == 201
    audit_before = len(_audit(world.engine))
    again = world.client.post(URL, json=GOOD, headers=bearer(world.tokens["security_lead"]))
    assert again.status_code == 200
    assert again.json() == {"rows": 3, "added": 0, "skipped": 3}
    assert len(_events(world.engine)) == 3
    assert len(_audit(world.engine)) == audit_before  # a request that changes nothing writes nothing


def test_an_empty_list_is_answered_with_zero_counts(world):
    r = world.client.post(URL, json=[], headers=bearer(world.tokens["security_lead"]))
    assert (r.status_code, r.json()) == (200, {"rows": 0, "added": 0, "skipped": 0})


# --- 400 ------------------------------------------------------------------------------------------


def test_a_bad_payload_is_refused_whole_and_leaves_every_table_unchanged(world):
    before = table_fingerprint(world.engine)
    payload = [
        *BAD,
        {
            "tenant_id": PRO,
            "track": "encryption",
            "stage": "gcm_enforced",
            "occurred_at": 20200501,
            "tenant": "x",
        },
    ]
    r = world.client.post(URL, json=payload, headers=bearer(world.tokens["security_lead"]))
    assert r.status_code == 400
    _no_trace(r)
    body = r.json()
    assert body["error"] == "2 bad value(s); nothing was recorded"
    # Shape problems (value not text, unknown field) are reported first, naming row and field.
    assert body["errors"] == [
        {"row": 7, "field": "occurred_at", "value": "20200501", "reason": "must be text (a JSON string)"},
        {
            "row": 7,
            "field": "tenant",
            "value": "tenant",
            "reason": "unknown field (did you mean 'tenant_id'?)",
        },
    ]
    assert table_fingerprint(world.engine) == before


def test_bad_rows_get_the_csv_reports_list(world, tmp_path: Path):
    """The same rows as CSV and as JSON: the same fields, values and reasons; rows shift by the header."""
    before = table_fingerprint(world.engine)
    r = world.client.post(URL, json=BAD, headers=bearer(world.tokens["security_lead"]))
    assert r.status_code == 400
    body = r.json()
    assert body["total_errors"] == 5 == len(body["errors"])
    assert table_fingerprint(world.engine) == before

    csv = tmp_path / "events.csv"
    csv.write_text(
        "tenant_id,track,stage,occurred_at\n"
        + "".join(f"{e['tenant_id']},{e['track']},{e['stage']},{e['occurred_at']}\n" for e in BAD)
    )
    with pytest.raises(ImportRejected) as rejected:
        import_events(engine=world.engine, path=csv, actor=SYSTEM)
    from_csv = [(e.row - 1, e.column, e.value, e.reason) for e in rejected.value.errors]
    from_api = [(e["row"], e["field"], e["value"], e["reason"]) for e in body["errors"]]
    assert from_api == from_csv
    reasons = {e["row"]: e["reason"] for e in body["errors"]}
    assert reasons[2].startswith("no tenant with id 'nobody'")
    assert reasons[3].startswith("track 'encryption' has no stage 'warp_speed'")
    assert "does not cover" in reasons[4]
    assert reasons[5].startswith("not a date or time")
    assert reasons[6] == "missing required value"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'[{"tenant_id": ', "the body is not JSON: Expecting value at line 1, column 16"),
        (b'{"tenant_id": "t1-00001"}', "the body must be a JSON list of events, not a JSON dict"),
        (b"\xff\xfe[]", "the body is not UTF-8 text"),
        (b"[1]", "1 bad value(s); nothing was recorded"),
    ],
)
def test_a_body_that_is_not_a_list_of_events_is_refused(world, body, message):
    before = table_fingerprint(world.engine)
    r = world.client.post(
        URL,
        content=body,
        headers={**bearer(world.tokens["security_lead"]), "Content-Type": "application/json"},
    )
    assert r.status_code == 400
    assert r.json()["error"] == message
    _no_trace(r)
    assert table_fingerprint(world.engine) == before


# --- 401 / 403 ------------------------------------------------------------------------------------


def test_no_token_or_a_bad_one_is_401(world):
    before = table_fingerprint(world.engine)
    for headers in (
        {},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer"},
        bearer("not-a-token"),
        bearer("lst_" + "A" * 43),  # the right shape, but no such token
        bearer(world.tokens["security_lead"] + "x"),
    ):
        r = world.client.post(URL, json=GOOD, headers=headers)
        assert r.status_code == 401, headers
        assert r.headers["WWW-Authenticate"].startswith("Bearer")
        _no_trace(r)
    assert table_fingerprint(world.engine) == before


def test_a_revoked_token_is_401(world):
    with write_session(world.engine) as s:
        revoke_api_token(session=s, actor=SYSTEM, name="security_lead-bot")
    before = table_fingerprint(world.engine)
    r = world.client.post(URL, json=GOOD, headers=bearer(world.tokens["security_lead"]))
    assert r.status_code == 401
    assert "revoked" in r.json()["error"]
    assert table_fingerprint(world.engine) == before


def test_a_managers_token_dies_with_the_managers_account(world):
    status = f"/api/v1/tenants/{world.own}/status"
    assert world.client.get(status, headers=bearer(world.tokens["account_manager"])).status_code == 200
    with write_session(world.engine) as s:
        s.scalar(select(User).where(User.email == MANAGERS[0])).is_active = False
    assert world.client.get(status, headers=bearer(world.tokens["account_manager"])).status_code == 401


@pytest.mark.parametrize("role", ["executive", "account_manager"])
def test_a_role_without_import_run_is_403(world, role):
    before = table_fingerprint(world.engine)
    r = world.client.post(URL, json=GOOD, headers=bearer(world.tokens[role]))
    assert r.status_code == 403
    assert "may not import run" in r.json()["error"]
    assert table_fingerprint(world.engine) == before


# --- 413 ------------------------------------------------------------------------------------------


def test_more_events_than_the_limit_is_413(world, monkeypatch):
    monkeypatch.setattr(api_module, "MAX_EVENTS", 5)
    before = table_fingerprint(world.engine)
    six = [dict(GOOD[0], occurred_at=f"2020-04-1{i}") for i in range(6)]
    r = world.client.post(URL, json=six, headers=bearer(world.tokens["security_lead"]))
    assert r.status_code == 413
    assert r.json()["error"] == "6 events in one request; at most 5, send the rest after"
    assert table_fingerprint(world.engine) == before
    assert (
        world.client.post(URL, json=six[:5], headers=bearer(world.tokens["security_lead"])).status_code == 201
    )


def test_a_body_over_the_byte_limit_is_413_at_the_documented_limit(world):
    # The real limits, not patched ones: 5 MiB is what the README promises.
    assert api_module.MAX_BODY_BYTES == 5 * 1024 * 1024 and api_module.MAX_EVENTS == 10_000
    before = table_fingerprint(world.engine)
    huge = [dict(GOOD[0], note="x" * (api_module.MAX_BODY_BYTES + 1))]
    r = world.client.post(URL, json=huge, headers=bearer(world.tokens["security_lead"]))
    assert r.status_code == 413
    assert "larger than 5,242,880 bytes" in r.json()["error"]
    # Without a Content-Length (chunked), the stream is cut at the limit all the same.
    chunks = (b"[" + b" " * 1024 * 1024 for _ in range(6))
    r = world.client.post(URL, content=chunks, headers=bearer(world.tokens["security_lead"]))
    assert r.status_code == 413
    assert table_fingerprint(world.engine) == before


# --- Idempotency-Key ------------------------------------------------------------------------------


def test_a_retry_with_the_same_key_gets_the_first_answer_and_writes_nothing(world):
    headers = {**bearer(world.tokens["security_lead"]), "Idempotency-Key": "batch-0001"}
    first = world.client.post(URL, json=GOOD, headers=headers)
    assert first.status_code == 201
    after_first = table_fingerprint(world.engine)
    retry = world.client.post(URL, json=GOOD, headers=headers)
    assert (retry.status_code, retry.json()) == (201, first.json())
    assert retry.headers["Idempotency-Replayed"] == "true"
    assert table_fingerprint(world.engine) == after_first
    # Without the key the same events are checked again: skipped, not repeated.
    plain = world.client.post(URL, json=GOOD, headers=bearer(world.tokens["security_lead"]))
    assert (plain.status_code, plain.json()["skipped"]) == (200, 3)


def test_a_key_reused_for_other_events_is_422_and_writes_nothing(world):
    headers = {**bearer(world.tokens["security_lead"]), "Idempotency-Key": "batch-0002"}
    assert world.client.post(URL, json=GOOD[:1], headers=headers).status_code == 201
    before = table_fingerprint(world.engine)
    r = world.client.post(URL, json=GOOD[1:], headers=headers)
    assert r.status_code == 422
    assert "batch-0002" in r.json()["error"] and "different request" in r.json()["error"]
    assert table_fingerprint(world.engine) == before


def test_keys_belong_to_one_token(world):
    key = {"Idempotency-Key": "shared-key"}
    a = world.client.post(URL, json=GOOD[:1], headers={**bearer(world.tokens["security_lead"]), **key})
    b = world.client.post(URL, json=GOOD[1:], headers={**bearer(world.tokens["admin"]), **key})
    assert (a.status_code, b.status_code) == (201, 201)
    assert b.json()["added"] == 2


def test_a_rejected_request_is_not_remembered(world):
    headers = {**bearer(world.tokens["security_lead"]), "Idempotency-Key": "fix-and-retry"}
    assert world.client.post(URL, json=BAD, headers=headers).status_code == 400
    # Nothing was written, so the key is free for the corrected request.
    assert world.client.post(URL, json=GOOD, headers=headers).status_code == 201


def test_a_malformed_key_is_400(world):
    headers = {**bearer(world.tokens["security_lead"]), "Idempotency-Key": "has spaces in it"}
    r = world.client.post(URL, json=GOOD, headers=headers)
    assert r.status_code == 400 and "Idempotency-Key" in r.json()["error"]


# --- 503 / 500 ------------------------------------------------------------------------------------


def test_a_database_that_is_down_is_503_without_a_trace(down_client, world):
    r = down_client.post(URL, json=GOOD, headers=bearer(world.tokens["security_lead"]))
    assert r.status_code == 503
    assert r.json()["error"] == "the database is unavailable; try again later"
    _no_trace(r)


def test_an_unexpected_fault_is_500_without_a_trace(world, monkeypatch):
    def broken(**_):
        raise RuntimeError("secret internals /etc/passwd")

    monkeypatch.setattr(api_module, "ingest_events", broken)
    r = world.client.post(URL, json=GOOD, headers=bearer(world.tokens["security_lead"]))
    assert r.status_code == 500
    assert r.json()["error"] == "internal error; the server log has the details"
    assert "secret" not in r.text
    _no_trace(r)


def test_the_openapi_page_and_schema_are_served(world):
    docs = world.client.get("/api/v1/docs")
    assert docs.status_code == 200 and "/api/v1/openapi.json" in docs.text
    spec = world.client.get("/api/v1/openapi.json").json()
    assert set(spec["paths"]) == {"/api/v1/health", "/api/v1/events", "/api/v1/tenants/{external_id}/status"}
    schema = spec["paths"]["/api/v1/events"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert schema["items"]["required"] == ["tenant_id", "track", "stage", "occurred_at"]
    assert set(spec["paths"]["/api/v1/events"]["post"]["responses"]) >= {
        "200",
        "201",
        "400",
        "401",
        "403",
        "413",
        "503",
    }
    json.dumps(spec)  # serialisable as served
