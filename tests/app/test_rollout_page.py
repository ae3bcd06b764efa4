"""Rollout page for every role: what it shows matches independent SQL on the demo database;
security leads record events through it, executives cannot."""

from __future__ import annotations

from datetime import time

import pytest

from lockstep.charts import stage_label
from tests.app.conftest import ACTORS
from tests.app.helpers import figure_titled as _figure
from tests.app.helpers import rows as _rows
from tests.app.helpers import table_with as _table

ROLES = ["admin", "security_lead", "account_manager", "executive"]


def _scope(role: str, alias: str = "cs") -> tuple[str, dict]:
    if role == "account_manager":
        return f" AND {alias}.account_manager = :me", {"me": ACTORS[role].email}
    return "", {}


def _metric(at, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


@pytest.mark.parametrize("role", ROLES)
def test_rollout_numbers_match_sql(open_page, demo_engine, role):
    at = open_page("rollout", role)
    assert not at.exception
    where, params = _scope(role)
    per_stage = dict(
        _rows(
            demo_engine,
            f"SELECT stage_code, count(*) FROM current_state cs WHERE track_code = 'encryption'{where} "
            "GROUP BY stage_code",
            params,
        )
    )
    total = sum(per_stage.values())
    assert total > 0
    assert any(c.value == f"{total:,} tenants on this track match the filters." for c in at.caption)

    funnel = _figure(at, "tenants by stage now")
    shown = {t["name"]: t["x"][0] for t in funnel["data"]}
    assert {k: v for k, v in shown.items() if v} == {stage_label(s): n for s, n in per_stage.items()}
    assert sum(shown.values()) == total

    not_ready = _rows(
        demo_engine,
        "SELECT count(*) FROM current_state cs JOIN track_stages ts ON ts.track_code = cs.track_code "
        "AND ts.code = cs.stage_code WHERE cs.track_code = 'encryption' AND (ts.is_side OR ts.position < "
        "(SELECT position FROM track_stages WHERE track_code = 'encryption' AND code = 'gcm_enabled'))"
        f"{where}",
        params,
    )[0][0]
    assert _metric(at, "Not ready") == f"{not_ready:,}"

    twhere, tparams = _scope(role, "t")
    first_page = _rows(
        demo_engine,
        "SELECT t.external_id FROM tenants t JOIN current_state cs ON cs.tenant_id = t.id AND "
        f"cs.track_code = 'encryption' WHERE 1 = 1{twhere} ORDER BY t.name, t.external_id LIMIT 50",
        tparams,
    )
    table = _table(at, "Account manager")
    assert list(table["Id"]) == [r[0] for r in first_page]
    if role == "account_manager":
        # Shown by name, not by e-mail.
        name = _rows(demo_engine, "SELECT display_name FROM users WHERE email = :e",
                     {"e": ACTORS[role].email})
        assert set(table["Account manager"]) == {name[0][0]}
    assert any(c.value.startswith(f"1–{min(total, 50)} of {total:,} tenants, page 1 of") for c in at.caption)


def test_search_and_page_three(open_page, demo_engine):
    at = open_page("rollout", "admin")
    at.number_input(key="rollout_page").set_value(3).run()
    page3 = list(_table(at, "Account manager")["Id"])
    expected = _rows(
        demo_engine,
        "SELECT t.external_id FROM tenants t JOIN current_state cs ON cs.tenant_id = t.id AND "
        "cs.track_code = 'encryption' ORDER BY t.name, t.external_id LIMIT 50 OFFSET 100",
    )
    assert page3 == [r[0] for r in expected]

    at.number_input(key="rollout_page").set_value(1).run()
    at.text_input(key="rollout_search").input("acorn").run()
    n = _rows(
        demo_engine,
        "SELECT count(*) FROM tenants WHERE lower(name) LIKE '%acorn%' OR lower(external_id) LIKE '%acorn%'",
    )[0][0]
    assert n > 0
    table = _table(at, "Account manager")
    assert len(table) == min(n, 50) and all("acorn" in name.lower() for name in table["Name"])
    assert any(c.value.startswith(f"1–{min(n, 50)} of {n:,} tenants") for c in at.caption)


def _open_first_tenant(open_page, role):
    at = open_page("rollout", role)
    # The picker shows "name (id)"; its value is the external id, first on the page by name.
    ext = _table(at, "Account manager")["Id"].iloc[0]
    at.selectbox(key="rollout_tenant").select(ext).run()
    assert not at.exception
    return at, ext


def test_security_lead_records_an_event(open_page, demo_engine):
    at, ext = _open_first_tenant(open_page, "security_lead")
    events_before = _rows(
        demo_engine,
        "SELECT count(*) FROM rollout_events e JOIN tenants t ON t.id = e.tenant_id WHERE t.external_id = :e",
        {"e": ext},
    )[0][0]
    assert len(_table(at, "Source")) == min(events_before, 500)

    next(s for s in at.selectbox if s.label == "Stage reached").select("blocked")
    next(t for t in at.time_input if t.label == "Time (UTC)").set_value(time(23, 59))
    next(t for t in at.text_area if t.label == "Note").input("waiting on the customer's change window")
    next(b for b in at.button if b.label == "Record event").click().run()
    assert not at.exception and not at.error

    row = _rows(
        demo_engine,
        "SELECT e.stage_code, e.actor, e.note, e.source FROM rollout_events e JOIN tenants t ON "
        "t.id = e.tenant_id WHERE t.external_id = :e ORDER BY e.id DESC LIMIT 1",
        {"e": ext},
    )[0]
    assert tuple(row) == (
        "blocked",
        ACTORS["security_lead"].email,
        "waiting on the customer's change window",
        "manual",
    )
    audit = _rows(
        demo_engine,
        "SELECT actor, entity_id FROM audit_log WHERE action = 'rollout.record_event' "
        "ORDER BY id DESC LIMIT 1",
    )
    assert [tuple(a) for a in audit] == [(ACTORS["security_lead"].email, ext)]
    assert any("Recorded on" in s.value and "Blocked" in s.value for s in at.success)
    states = _table(at, "Last stage reached")
    assert "Blocked" in set(states["Stage"])


def test_a_refused_event_says_why_and_writes_nothing(open_page, demo_engine):
    at, ext = _open_first_tenant(open_page, "admin")
    stage = _rows(
        demo_engine,
        "SELECT cs.reached_stage_code FROM current_state cs JOIN tenants t ON "
        "t.id = cs.tenant_id WHERE t.external_id = :e AND cs.track_code = 'encryption'",
        {"e": ext},
    )[0][0]
    assert stage != "legacy_cipher"  # the first tenant by name has moved on; going back is refused
    count = "SELECT count(*) FROM rollout_events"
    before = _rows(demo_engine, count)[0][0]
    next(s for s in at.selectbox if s.label == "Stage reached").select("legacy_cipher")
    next(b for b in at.button if b.label == "Record event").click().run()
    assert any("going back needs an explicit 'rolled_back' event" in e.value for e in at.error)
    assert _rows(demo_engine, count)[0][0] == before


@pytest.mark.parametrize("role", ["executive", "account_manager"])
def test_roles_without_event_record_see_no_form(open_page, role):
    at, _ = _open_first_tenant(open_page, role)
    assert not at.get("form")
    assert not any(b.label == "Record event" for b in at.button)
    assert _table(at, "Last stage reached") is not None
