"""GET /api/v1/tenants/{id}/status (scoped like the Customers page) and GET /api/v1/health."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from lockstep.db import write_session
from lockstep.migrate import downgrade, head_revision
from lockstep.permissions import SYSTEM
from lockstep.queries.customers import customer_status
from lockstep.services.api_tokens import revoke_api_token
from lockstep.services.notes import add_note
from tests.api.conftest import bearer


def _status(world, tenant: str, role: str):
    return world.client.get(f"/api/v1/tenants/{tenant}/status", headers=bearer(world.tokens[role]))


def test_an_admin_token_reads_any_tenants_status_as_the_customer_view(world):
    with write_session(world.engine) as s:
        add_note(session=s, actor=SYSTEM, tenant_external_id=world.other, body="Cut-over planned for May")
    r = _status(world, world.other, "admin")
    assert r.status_code == 200, r.text
    body = r.json()
    with write_session(world.engine) as s:
        expected = customer_status(session=s, actor=SYSTEM, tenant_external_id=world.other)
    assert body["external_id"] == world.other == expected.external_id
    assert (body["name"], body["tier"], body["seats"]) == (expected.name, expected.tier, expected.seats)
    assert [t["track"] for t in body["tracks"]] == [t.track for t in expected.tracks]
    assert [t["stage"] for t in body["tracks"]] == [t.stage for t in expected.tracks]
    assert body["tracks"][0]["next_text"] == expected.tracks[0].next_text
    assert body["e2ee_text"] == expected.e2ee_text
    assert [n["body"] for n in body["notes"]] == ["Cut-over planned for May"]
    assert body["as_of"] == expected.as_of.isoformat()


def test_a_managers_token_sees_its_own_tenants_only(world):
    own = _status(world, world.own, "account_manager")
    assert own.status_code == 200 and own.json()["external_id"] == world.own
    theirs = _status(world, world.other, "account_manager")
    missing = _status(world, "no-such-tenant", "account_manager")
    assert theirs.status_code == missing.status_code == 404
    # The same answer as for a tenant that does not exist: nothing to learn about the other's.
    assert theirs.json()["error"].replace(world.other, "?") == missing.json()["error"].replace(
        "no-such-tenant", "?"
    )


@pytest.mark.parametrize("role", ["executive", "security_lead"])
def test_roles_without_the_customers_page_are_403(world, role):
    r = _status(world, world.own, role)
    assert r.status_code == 403
    assert "may not read customer status" in r.json()["error"]


def test_status_needs_a_live_token(world):
    assert world.client.get(f"/api/v1/tenants/{world.own}/status").status_code == 401
    with write_session(world.engine) as s:
        revoke_api_token(session=s, actor=SYSTEM, name="admin-bot")
    assert _status(world, world.own, "admin").status_code == 401


def test_status_is_503_when_the_database_is_down(down_client, world):
    r = down_client.get(f"/api/v1/tenants/{world.own}/status", headers=bearer(world.tokens["admin"]))
    assert r.status_code == 503
    assert "Traceback" not in r.text


# --- health ---------------------------------------------------------------------------------------


def test_health_is_200_on_a_migrated_database_without_a_token(world):
    r = world.client.get("/api/v1/health")
    assert r.status_code == 200
    assert r.json() == {
        "status": "ok",
        "database_revision": head_revision(),
        "expected_revision": head_revision(),
    }


def test_health_is_503_when_the_database_is_behind(db_url, engine):
    from fastapi.testclient import TestClient

    from lockstep.api import create_app

    downgrade(db_url, "0006")
    with TestClient(create_app(engine)) as client:
        r = client.get("/api/v1/health")
    assert r.status_code == 503
    assert r.json()["database_revision"] == "0006"
    assert "db upgrade" in r.json()["status"]


def test_health_is_503_on_a_never_migrated_database(engine):
    from fastapi.testclient import TestClient

    from lockstep.api import create_app

    with engine.begin() as conn:
        conn.execute(text("DELETE FROM alembic_version"))
    with TestClient(create_app(engine)) as client:
        r = client.get("/api/v1/health")
    assert (r.status_code, r.json()["database_revision"]) == (503, None)


def test_health_is_503_when_the_database_is_unreachable(down_client):
    r = down_client.get("/api/v1/health")
    assert r.status_code == 503
    assert r.json()["status"] == "database unreachable"
    assert "Traceback" not in r.text
