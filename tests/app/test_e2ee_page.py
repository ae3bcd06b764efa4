"""E2EE page for every role: adoption, blockers and the manager table match independent SQL."""

from __future__ import annotations

import json

import pytest

from lockstep.labels import person_label
from tests.app.conftest import ACTORS
from tests.app.helpers import figure_titled as _figure
from tests.app.helpers import rows as _rows
from tests.app.helpers import table_with as _table

ROLES = ["admin", "security_lead", "account_manager", "executive"]
NOT_ENABLED = "cs.track_code = 'e2ee' AND cs.stage_code <> 'enabled'"


def _scope(role: str) -> tuple[str, dict]:
    if role == "account_manager":
        return " AND cs.account_manager = :me", {"me": ACTORS[role].email}
    return "", {}


def _waiting(engine, manager: str) -> list[str]:
    """External ids of the manager's tenants not yet enabled, by name (the drill-down's order)."""
    return [
        r[0]
        for r in _rows(
            engine,
            "SELECT t.external_id FROM tenants t JOIN current_state cs ON cs.tenant_id = t.id "
            f"WHERE {NOT_ENABLED} AND cs.account_manager = :m ORDER BY t.name, t.external_id",
            {"m": manager},
        )
    ]


@pytest.mark.parametrize("role", ROLES)
def test_e2ee_numbers_match_sql(open_page, demo_engine, role):
    at = open_page("e2ee", role)
    assert not at.exception
    where, params = _scope(role)
    per_stage = dict(
        _rows(
            demo_engine,
            f"SELECT stage_code, count(*) FROM current_state cs WHERE track_code = 'e2ee'{where} "
            "GROUP BY stage_code",
            params,
        )
    )
    # Independently: the e2ee track covers exactly the paid tiers' tenants.
    paid = _rows(
        demo_engine,
        "SELECT count(*) FROM tenants t JOIN tiers ON tiers.code = t.tier WHERE tiers.paid"
        + where.replace("cs.", "t."),
        params,
    )[0][0]
    assert sum(per_stage.values()) == paid > 0
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Paid tenants covered"] == f"{paid:,}"
    assert metrics["Enabled"] == f"{per_stage.get('enabled', 0):,}"
    assert metrics["Pilot"] == f"{per_stage.get('pilot', 0):,}"
    assert metrics["Blocked"] == f"{per_stage.get('blocked', 0):,}"

    by_tier = _figure(at, "by tier and E2EE stage")
    assert sum(sum(t["y"]) for t in by_tier["data"]) == paid

    blocking = _rows(demo_engine, "SELECT blocking_features FROM tracks WHERE code = 'e2ee'")[0][0]
    features = json.loads(blocking) if isinstance(blocking, str) else blocking
    marks = ", ".join(f":f{i}" for i in range(len(features)))
    held = dict(
        _rows(
            demo_engine,
            "SELECT tf.feature, count(*) FROM tenant_features tf JOIN current_state cs ON "
            f"cs.tenant_id = tf.tenant_id WHERE {NOT_ENABLED} AND tf.feature IN ({marks}){where} "
            "GROUP BY tf.feature",
            {**params, **{f"f{i}": f for i, f in enumerate(features)}},
        )
    )
    bars = _figure(at, "Features in use")["data"][0]
    assert sorted(bars["x"], reverse=True) == bars["x"] == sorted(held.values(), reverse=True)
    assert bars["y"][0] == "Cloud recording"  # most held back, in plain words

    per_manager = dict(
        _rows(
            demo_engine,
            f"SELECT cs.account_manager, count(*) FROM current_state cs WHERE {NOT_ENABLED}{where} "
            "GROUP BY cs.account_manager",
            params,
        )
    )
    table = _table(at, "Not yet enabled")
    people = dict(_rows(demo_engine, "SELECT email, display_name FROM users"))
    # Managers by name (self-serve tenants under one label), counts written out.
    expected = {person_label(email, people): f"{n:,}" for email, n in per_manager.items()}
    assert dict(zip(table["Account manager"], table["Not yet enabled"], strict=True)) == expected
    if role == "account_manager":
        assert list(per_manager) == [ACTORS[role].email]

    first = at.selectbox(key="e2ee_manager").value
    assert person_label(first, people) == table["Account manager"].iloc[0]
    drill = _table(at, "Held back by")
    assert len(drill) == per_manager[first]
    assert len(at.get("download_button")) == 2


def test_drill_down_follows_the_manager_picked(open_page, demo_engine):
    at = open_page("e2ee", "executive")
    box = at.selectbox(key="e2ee_manager")
    box.select_index(len(box.options) - 1).run()  # options are names; the value is the e-mail
    manager = at.selectbox(key="e2ee_manager").value
    ids = _waiting(demo_engine, manager)
    assert list(_table(at, "Held back by")["Id"]) == ids


def test_drill_down_shows_a_page_at_a_time_until_all_are_shown(open_page, demo_engine, monkeypatch):
    from lockstep.queries import e2ee

    monkeypatch.setattr(e2ee, "DRILL_DOWN_PAGE", 4)  # the demo's managers have a few dozen each
    at = open_page("e2ee", "security_lead")
    manager = at.selectbox(key="e2ee_manager").value
    ids = _waiting(demo_engine, manager)
    assert len(ids) > 8
    shown = 4
    while True:
        assert list(_table(at, "Held back by")["Id"]) == ids[:shown]
        assert f"{shown:,} of {len(ids):,} not yet enabled, by name." in [c.value for c in at.caption]
        more = [b for b in at.button if b.key == "e2ee_more"]
        if shown == len(ids):
            assert more == []  # nothing left to show
            break
        assert more[0].label == f"Show {min(4, len(ids) - shown)} more"
        more[0].click().run()
        shown = min(shown + 4, len(ids))
    # Another manager starts again at their first page.
    at.selectbox(key="e2ee_manager").select_index(1).run()
    other = at.selectbox(key="e2ee_manager").value
    theirs = _rows(
        demo_engine,
        f"SELECT count(*) FROM current_state cs WHERE {NOT_ENABLED} AND cs.account_manager = :m",
        {"m": other},
    )[0][0]
    assert len(_table(at, "Held back by")) == min(4, theirs) > 0
