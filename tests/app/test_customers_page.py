"""Customers page for admins and account managers: the tenant list is scoped, the status matches
independent SQL, and a note lands in the database with its audit entry."""

from __future__ import annotations

import pytest

from tests.app.conftest import ACTORS
from tests.app.helpers import rows as _rows

ROLES = ["admin", "account_manager"]
ME = ACTORS["account_manager"].email


@pytest.mark.parametrize("role", ROLES)
def test_customer_status_matches_sql(open_page, demo_engine, role):
    at = open_page("customers", role)
    assert not at.exception
    where = " WHERE account_manager = :me" if role == "account_manager" else ""
    expected = [
        r[0]
        for r in _rows(
            demo_engine,
            f"SELECT external_id FROM tenants{where} ORDER BY name, external_id LIMIT 100",
            {"me": ME},
        )
    ]
    box = at.selectbox(key="customers_tenant")
    assert box.options == [f"{n} ({e})" for e, n in _names(demo_engine, expected)]
    ext = box.value
    assert ext == expected[0]

    name, tier_name = _rows(
        demo_engine,
        "SELECT t.name, tiers.name FROM tenants t JOIN tiers ON tiers.code = t.tier WHERE t.external_id = :e",
        {"e": ext},
    )[0]
    assert at.text[0].value == name
    assert f"Account {ext} · {tier_name}" in at.text[1].value
    stages = _rows(
        demo_engine,
        "SELECT ts.name FROM current_state cs JOIN tenants t ON t.id = cs.tenant_id JOIN tracks tr ON "
        "tr.code = cs.track_code JOIN track_stages ts ON ts.track_code = cs.track_code AND "
        "ts.code = cs.stage_code WHERE t.external_id = :e ORDER BY tr.position",
        {"e": ext},
    )
    assert [m.value for m in at.metric if m.label == "Now"] == [r[0] for r in stages]
    assert [b.key for b in at.get("download_button")] == ["customers_csv", "customers_pdf"]


def _names(engine, ids: list[str]) -> list[tuple[str, str]]:
    names = dict(_rows(engine, "SELECT external_id, name FROM tenants"))
    return [(e, names[e]) for e in ids]


def test_admin_narrows_to_one_manager(open_page, demo_engine):
    at = open_page("customers", "admin")
    manager = "marco.rossi@lockstep.example"
    at.selectbox(key="customers_manager").select(manager).run()
    expected = _rows(
        demo_engine,
        "SELECT external_id, name FROM tenants WHERE account_manager = :m "
        "ORDER BY name, external_id LIMIT 100",
        {"m": manager},
    )
    assert at.selectbox(key="customers_tenant").options == [f"{n} ({e})" for e, n in expected]


def test_manager_searches_only_their_own_tenants(open_page, demo_engine):
    at = open_page("customers", "account_manager")
    other = _rows(
        demo_engine, "SELECT external_id FROM tenants WHERE account_manager <> :me LIMIT 1", {"me": ME}
    )
    at.text_input(key="customers_search").input(other[0][0]).run()
    assert not at.exception
    assert any(i.value == "No tenant matches." for i in at.info)
    assert not at.get("download_button")


def test_manager_adds_a_note(open_page, demo_engine):
    at = open_page("customers", "account_manager")
    ext = at.selectbox(key="customers_tenant").value
    next(t for t in at.text_area if t.label.startswith("Add a note")).input(
        "Customer asked for the E2EE pilot in July"
    )
    next(b for b in at.button if b.label == "Save note").click().run()
    assert not at.exception and not at.error
    notes = _rows(
        demo_engine,
        "SELECT n.author, n.body FROM tenant_notes n JOIN tenants t ON t.id = n.tenant_id "
        "WHERE t.external_id = :e",
        {"e": ext},
    )
    assert [tuple(n) for n in notes] == [(ME, "Customer asked for the E2EE pilot in July")]
    audit = _rows(demo_engine, "SELECT actor, entity_id FROM audit_log WHERE action = 'note.add'")
    assert [tuple(a) for a in audit] == [(ME, ext)]
    assert any(s.value == "Note saved." for s in at.success)
    # Notes are whole text blocks (a table cell would cut a long one off).
    assert "Customer asked for the E2EE pilot in July" in [t.value for t in at.text]
