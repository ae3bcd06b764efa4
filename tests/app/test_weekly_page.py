"""Weekly page: every number it shows equals an independent SQL over weekly_snapshots."""

from __future__ import annotations

import base64
import json
from datetime import datetime

import numpy as np
import pytest
from sqlalchemy import text

from lockstep.access import pages_for
from lockstep.db import write_session
from lockstep.permissions import SYSTEM
from lockstep.services.rollout import record_event
from lockstep.services.snapshots import backfill_weeks

ROLES = ("executive", "security_lead", "admin")


@pytest.fixture
def closed(demo_engine):
    """The demo database with every program week closed (the fixture database closes none)."""
    with write_session(demo_engine) as s:
        results = backfill_weeks(session=s, actor=SYSTEM)
    assert results
    return demo_engine


def sql(engine, query: str, **params):
    with engine.connect() as conn:
        return conn.execute(text(query), params).all()


def plain(array):
    """A plotly JSON array as a list (plotly sends numeric arrays as base64 typed arrays)."""
    if isinstance(array, dict) and "bdata" in array:
        return np.frombuffer(base64.b64decode(array["bdata"]), dtype=array["dtype"]).tolist()
    return array


def figures(at) -> dict[str, dict]:
    """Plotly figures on the page, keyed by their title, with x and y as plain lists."""
    out = {}
    for el in at.get("plotly_chart"):
        fig = json.loads(el.proto.spec)
        for trace in fig["data"]:
            for axis in ("x", "y"):
                trace[axis] = plain(trace.get(axis, []))
        out[fig["layout"]["title"]["text"]] = fig
    return out


def by_title(figs: dict[str, dict], start: str) -> dict:
    return next(f for title, f in figs.items() if title.startswith(start))


def table(at, column: str):
    """The first table on the page with `column` (AppTest finds dataframes by position, not key)."""
    return next(df.value for df in at.dataframe if column in df.value.columns)


def metric(at, label: str):
    return next(m for m in at.metric if m.label == label)


def latest_week(engine) -> str:
    return str(sql(engine, "SELECT max(week_start) FROM weekly_snapshots")[0][0])


@pytest.mark.parametrize("role", ROLES)
def test_numbers_shown_equal_sql_over_weekly_snapshots(closed, open_page, role):
    at = open_page("weekly", role)
    assert not at.exception, at.exception
    weeks = [r[0] for r in sql(closed, "SELECT week_start FROM snapshot_weeks ORDER BY week_start")]
    picker = at.selectbox(key="weekly_week")
    assert len(picker.options) == len(weeks)
    # W27 holds the program's today (its last day, 2020-06-30): running, not closed.
    assert (picker.options[0], picker.options[-1]) == ("Week 14, 2020 (2020-W14)", "Week 26, 2020 (2020-W26)")
    assert str(picker.value) == str(weeks[-1])[:10]

    week = latest_week(closed)
    ((done, total),) = sql(
        closed,
        """
        SELECT sum(CASE WHEN stage_code = 'gcm_enforced' THEN n_current ELSE 0 END), sum(n_current)
        FROM weekly_snapshots WHERE track_code = 'encryption' AND week_start = :w""",
        w=week,
    )
    assert metric(at, "GCM enforced").value == f"{100 * done / total:.1f}%"
    ((enabled, paid),) = sql(
        closed,
        """
        SELECT sum(CASE WHEN s.stage_code = 'enabled' THEN s.n_current ELSE 0 END), sum(s.n_current)
        FROM weekly_snapshots s JOIN tiers t ON t.code = s.tier
        WHERE s.track_code = 'e2ee' AND t.paid AND s.week_start = :w""",
        w=week,
    )
    assert metric(at, "Paid tenants with E2EE").value == f"{100 * enabled / paid:.1f}%"

    figs = figures(at)
    mix = by_title(figs, "AES-256-GCM encryption")
    per_week = dict(
        sql(
            closed,
            """
        SELECT week_start, sum(n_current) FROM weekly_snapshots WHERE track_code = 'encryption'
        GROUP BY week_start ORDER BY week_start""",
        )
    )
    labels = mix["data"][0]["x"]
    assert len(labels) == len(per_week)
    shown = [sum(t["y"][i] for t in mix["data"]) for i in range(len(labels))]
    assert shown == list(per_week.values())
    per_stage = dict(
        sql(
            closed,
            """
        SELECT stage_code, sum(n_current) FROM weekly_snapshots
        WHERE track_code = 'encryption' AND week_start = :w GROUP BY stage_code""",
            w=week,
        )
    )
    names = {
        "Legacy cipher": "legacy_cipher",
        "Clients upgraded": "clients_upgraded",
        "GCM enabled": "gcm_enabled",
        "GCM enforced": "gcm_enforced",
        "Blocked": "blocked",
        "Rolled back": "rolled_back",
    }
    assert {names[t["name"]]: t["y"][-1] for t in mix["data"] if t["y"][-1]} == per_stage

    forecast = by_title(figs, "Forecast")
    assert forecast["data"][0]["y"][-1] == pytest.approx(100 * done / total)
    adoption = by_title(figs, "Paid tiers")
    assert adoption["data"][0]["y"][-1] == pytest.approx(100 * enabled / paid)
    assert by_title(figs, "Burn-up")["data"][0]["x"][-1] == "2020-W26"
    ((done_items, due_items),) = sql(
        closed,
        """
        SELECT sum(CASE WHEN status = 'done' AND done_date <= '2020-06-28' THEN 1 ELSE 0 END),
               sum(CASE WHEN due_date <= '2020-06-28' THEN 1 ELSE 0 END)
        FROM plan_items WHERE retired_at IS NULL""",
    )
    # Done, with what was due beside it in words: never "done / due" (it reads as a fraction).
    assert metric(at, "Plan items done").value == f"{done_items:,}"
    assert metric(at, "Plan items done").delta.startswith(f"{due_items:,} due by then")

    # Today is the program's end (2020-06-30), after the 2020-05-30 deadline: legacy counts as stuck.
    stuck = sql(
        closed,
        """
        SELECT count(*) FROM current_state WHERE track_code = 'encryption'
        AND (stage_code IN ('blocked', 'rolled_back') OR stage_code = 'legacy_cipher')""",
    )[0][0]
    tiers = table(at, "Legacy after deadline")
    assert sum(int(n.replace(",", "")) for n in tiers["Total"]) == stuck
    largest = table(at, "Why stuck")
    top = [
        r[0]
        for r in sql(
            closed,
            """
        SELECT t.external_id FROM current_state c JOIN tenants t ON t.id = c.tenant_id
        WHERE c.track_code = 'encryption'
          AND c.stage_code IN ('blocked', 'rolled_back', 'legacy_cipher')
        ORDER BY t.seats DESC, t.external_id LIMIT 10""",
        )
    ]
    # "Name (T0001234)": the name first, the id kept.
    assert [t.rsplit("(", 1)[1].rstrip(")") for t in largest["Tenant"]] == top
    assert bool([b for b in at.button if b.key == "weekly_backfill"]) == (role != "executive")


def test_choosing_an_earlier_week_cuts_every_chart_there(closed, open_page):
    at = open_page("weekly", "executive")
    picker = at.selectbox(key="weekly_week")
    picker.select_index(3).run()
    assert not at.exception
    label = sql(closed, "SELECT week_start FROM snapshot_weeks ORDER BY week_start LIMIT 1 OFFSET 3")[0][0]
    figs = figures(at)
    mix = by_title(figs, "AES-256-GCM encryption")
    assert len(mix["data"][0]["x"]) == 4
    assert by_title(figs, "Paid tiers")["data"][0]["x"][-1] == mix["data"][0]["x"][-1]
    assert str(label).startswith("2020-04-20")
    assert mix["data"][0]["x"][-1] == "2020-W17"


def test_a_back_dated_event_shows_as_restated(closed, open_page):
    # A tenant only on the legacy cipher through 2020-W19: upgrading it on 05-05 is legal and
    # moves it from legacy to upgraded at the end of W19 (and of every later week it stays so).
    (ext,) = sql(
        closed,
        """
        SELECT t.external_id FROM tenants t JOIN current_state c ON c.tenant_id = t.id
        WHERE c.track_code = 'encryption' AND NOT EXISTS (
            SELECT 1 FROM rollout_events e WHERE e.tenant_id = t.id AND e.track_code = 'encryption'
              AND e.occurred_at < '2020-05-12'
              AND (e.stage_code <> 'legacy_cipher' OR e.occurred_at >= '2020-05-05 12:00:00'))
          AND NOT EXISTS (SELECT 1 FROM rollout_events e WHERE e.tenant_id = t.id
              AND e.track_code = 'encryption' AND e.stage_code = 'legacy_cipher'
              AND e.occurred_at >= '2020-05-05 12:00:00')
        ORDER BY t.id LIMIT 1""",
    )[0]
    with write_session(closed) as s:
        record_event(
            session=s,
            actor=SYSTEM,
            tenant_external_id=ext,
            track="encryption",
            stage="clients_upgraded",
            occurred_at=datetime(2020, 5, 5, 12),
            source="test",
        )
    at = open_page("weekly", "executive")
    assert not at.exception
    rows = sql(
        closed,
        """
        SELECT week_start, stage_code, sum(n_reported), sum(n_current) FROM weekly_snapshots
        WHERE week_start = '2020-05-04' AND track_code = 'encryption'
        GROUP BY week_start, stage_code HAVING sum(n_reported) <> sum(n_current)""",
    )
    assert len(rows) == 2
    restated = table(at, "change")
    w19 = restated[restated["week_label"] == "2020-W19"]
    expected = {(r[1], int(r[2]), int(r[3])) for r in rows}
    stage_codes = {"Legacy cipher": "legacy_cipher", "Clients upgraded": "clients_upgraded"}
    assert {
        (stage_codes[s], int(a), int(b))
        for s, a, b in zip(w19["stage"], w19["n_reported"], w19["n_current"], strict=True)
    } == expected
    assert any("changed after they closed" in w.value for w in at.warning)
    mix = by_title(figures(at), "AES-256-GCM encryption")
    assert "2020-W19" in [a["x"] for a in mix["layout"]["annotations"] if a["text"] == "*"]


def test_the_running_week_shows_live_numbers_marked_so_far_and_a_same_day_event_restates_nothing(
    closed, open_page
):
    assert sql(closed, "SELECT max(week_start) FROM snapshot_weeks")[0][0] == "2020-06-22"  # W26
    with write_session(closed) as s:
        (ext,) = s.execute(text(
            "SELECT t.external_id FROM tenants t JOIN current_state c ON c.tenant_id = t.id "
            "WHERE c.track_code = 'encryption' AND c.since < '2020-06-30 09:00:00' AND c.stage_code IN "
            "('legacy_cipher', 'clients_upgraded', 'gcm_enabled') ORDER BY t.id LIMIT 1"
        )).one()
        record_event(session=s, actor=SYSTEM, tenant_external_id=ext, track="encryption",
                     stage="gcm_enforced", occurred_at=datetime(2020, 6, 30, 9), source="test")
    at = open_page("weekly", "executive")
    assert not at.exception
    assert any(m.value.startswith("**2020-W27 so far: running week, not closed**") for m in at.markdown)
    enforced, total = sql(
        closed,
        "SELECT sum(CASE WHEN stage_code = 'gcm_enforced' THEN 1 ELSE 0 END), count(*) FROM current_state "
        "WHERE track_code = 'encryption'",
    )[0]
    assert metric(at, "GCM enforced so far").value == f"{100 * enforced / total:.1f}%"
    assert any("No number up to this week has changed" in c.value for c in at.caption)


def test_no_closed_week_explains_and_lets_a_security_lead_close_them(demo_engine, open_page):
    at = open_page("weekly", "executive")
    assert not at.exception
    assert any("snapshot backfill" in i.value for i in at.info)
    assert not [b for b in at.button if b.key == "weekly_backfill"]

    at = open_page("weekly", "security_lead")
    at.button(key="weekly_backfill").click().run()
    assert not at.exception
    n = sql(demo_engine, "SELECT count(*) FROM snapshot_weeks")[0][0]
    assert n == 13  # 2020-W14 .. 2020-W26: W27 holds the program's today (its last day) and is running
    assert any(f"Closed {n} week(s)" in s.value for s in at.success)
    assert len(at.selectbox(key="weekly_week").options) == n
    audit = sql(
        demo_engine,
        "SELECT count(*) FROM audit_log WHERE action = 'snapshot.close_week'"
        " AND actor = 'lead@lockstep.example'",
    )[0][0]
    assert audit == n


def test_account_manager_has_no_weekly_page():
    assert "weekly" not in pages_for("account_manager")
    assert all("weekly" in pages_for(role) for role in ROLES)
