"""Overview page for every role: the numbers it shows match independent SQL on the demo database."""

from __future__ import annotations

import json
from datetime import date, timedelta

import pytest
from sqlalchemy import text

from lockstep.clock import utcnow
from tests.app.conftest import ACTORS

ROLES = ["admin", "security_lead", "account_manager", "executive"]


def _metrics(at) -> dict[str, tuple[str, str]]:
    return {m.label: (m.value, m.delta) for m in at.metric}


def _n(value: str) -> int:
    return int(value.replace(",", ""))


def _today(conn) -> date:
    end = date.fromisoformat(str(conn.execute(text("SELECT max(end_date) FROM program")).scalar()))
    return min(utcnow().date(), end)


def _scope(role: str) -> tuple[str, dict]:
    if role == "account_manager":
        return " AND t.account_manager = :me", {"me": ACTORS[role].email}
    return "", {}


@pytest.mark.parametrize("role", ROLES)
def test_overview_numbers_match_sql(open_page, demo_engine, role):
    at = open_page("overview", role)
    assert not at.exception
    shown = _metrics(at)
    where, params = _scope(role)
    with demo_engine.connect() as conn:
        today = _today(conn)
        ago = today - timedelta(days=7)
        plan = conn.execute(
            text(
                "SELECT"
                " sum(CASE WHEN status = 'done' THEN 1 ELSE 0 END),"
                " sum(CASE WHEN status = 'done' AND (done_date IS NULL OR done_date <= :ago)"
                "     THEN 1 ELSE 0 END),"
                " sum(CASE WHEN status <> 'done' AND due_date < :today THEN 1 ELSE 0 END),"
                " sum(CASE WHEN status IN ('at_risk', 'blocked') OR (status <> 'done' AND due_date >= :today"
                "     AND due_date <= :soon AND percent < 50) THEN 1 ELSE 0 END),"
                " count(*)"
                " FROM plan_items WHERE retired_at IS NULL"
            ),
            {"today": today, "ago": ago, "soon": today + timedelta(days=7)},
        ).one()
        stages = dict(
            conn.execute(
                text(
                    "SELECT cs.stage_code, count(*)"
                    " FROM current_state cs JOIN tenants t ON t.id = cs.tenant_id"
                    f" WHERE cs.track_code = 'encryption'{where} GROUP BY cs.stage_code"
                ),
                params,
            ).all()
        )
        names = dict(
            conn.execute(text("SELECT code, name FROM track_stages WHERE track_code = 'encryption'")).all()
        )
        e2ee_enabled = conn.execute(
            text(
                "SELECT count(*) FROM current_state cs JOIN tenants t ON t.id = cs.tenant_id"
                " JOIN tiers ON tiers.code = t.tier"
                f" WHERE cs.track_code = 'e2ee' AND cs.stage_code = 'enabled' AND tiers.paid{where}"
            ),
            params,
        ).scalar()
        window = conn.execute(text("SELECT start_date, end_date FROM program")).one()

    start, end = (date.fromisoformat(str(d)) for d in window)
    assert shown["Program day"][0] == f"Day {(today - start).days + 1} of {(end - start).days + 1}"
    assert _n(shown["Done"][0]) == plan[0]
    assert int(shown["Done"][1]) == plan[0] - plan[1]
    assert _n(shown["Overdue"][0]) == plan[2]
    assert _n(shown["At risk"][0]) == plan[3]
    assert _n(shown["Items in the plan"][0]) == plan[4]
    assert sum(stages.values()) > 0
    for code, name in names.items():
        assert _n(shown[name][0]) == stages.get(code, 0), code
    ready = sum(stages.get(c, 0) for c in ("gcm_enabled", "gcm_enforced"))
    assert shown["Ready for the cut-over"][0] == f"{ready / sum(stages.values()):.1%}"
    assert _n(shown["Paid tenants with E2EE enabled"][0]) == e2ee_enabled

    fig = json.loads(at.get("plotly_chart")[0].proto.spec)
    now_by_stage = {t["name"]: t["x"][1] for t in fig["data"]}
    assert sum(now_by_stage.values()) == sum(stages.values())
    assert now_by_stage[names["gcm_enforced"]] == stages.get("gcm_enforced", 0)


def test_account_manager_sees_fewer_tenants_than_everyone(open_page):
    everyone = _metrics(open_page("overview", "security_lead"))
    own = _metrics(open_page("overview", "account_manager"))
    total = sum(
        _n(everyone[k][0]) for k in ("Legacy cipher", "Clients upgraded", "GCM enabled", "GCM enforced")
    )
    mine = sum(_n(own[k][0]) for k in ("Legacy cipher", "Clients upgraded", "GCM enabled", "GCM enforced"))
    assert 0 < mine < total
