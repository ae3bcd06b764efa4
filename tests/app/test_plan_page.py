"""Plan page: what each role sees, filters, charts, and editing through the form (save and conflict)."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest
from sqlalchemy import text

from lockstep.db import write_session
from lockstep.permissions import Actor
from lockstep.services.plan_items import update_plan_item
from tests.app.conftest import ACTORS
from tests.app.helpers import table_with as _table

OTHER = Actor("other.lead@lockstep.example", "security_lead")


def _live_count(engine, where: str = "1 = 1", **params) -> int:
    with engine.connect() as conn:
        return conn.execute(
            text(f"SELECT count(*) FROM plan_items WHERE retired_at IS NULL AND {where}"), params
        ).scalar()


def _item(engine, item_id: str) -> dict:
    with engine.connect() as conn:
        row = conn.execute(
            text("SELECT status, percent, comment, version, updated_by FROM plan_items WHERE id = :id"),
            {"id": item_id},
        ).one()
    return dict(row._mapping)


def _audits(engine, item_id: str) -> int:
    with engine.connect() as conn:
        return conn.execute(
            text("SELECT count(*) FROM audit_log WHERE action = 'plan.update_item' AND entity_id = :id"),
            {"id": item_id},
        ).scalar()


def _values(array) -> list:
    """A plotly JSON array as a list (plotly sends numeric arrays as base64 typed arrays)."""
    if isinstance(array, dict) and "bdata" in array:
        return np.frombuffer(base64.b64decode(array["bdata"]), dtype=array["dtype"]).tolist()
    return list(array)


def _figure(at, index: int) -> dict:
    return json.loads(at.get("plotly_chart")[index].proto.spec)


def _open_item(open_page, demo_engine, role="security_lead") -> tuple:
    """Open the plan as `role` with a not-done item selected; return (at, item id)."""
    with demo_engine.connect() as conn:
        item_id = conn.execute(
            text(
                "SELECT id FROM plan_items WHERE retired_at IS NULL AND status <> 'done' ORDER BY id LIMIT 1"
            )
        ).scalar()
    at = open_page("plan", role)
    at.selectbox(key="plan_item").set_value(item_id).run()
    assert not at.exception
    return at, item_id


@pytest.mark.parametrize("role", ["admin", "security_lead", "executive"])
def test_plan_page_shows_every_live_item_and_the_charts(open_page, demo_engine, role):
    at = open_page("plan", role)
    assert not at.exception
    table = _table(at, "Slip")
    assert len(table) == _live_count(demo_engine)
    timeline = {t["name"]: t for t in _figure(at, 0)["data"]}
    assert len(timeline["Planned"]["y"]) == _live_count(demo_engine, "due_date IS NOT NULL")
    burnup = {t["name"]: t for t in _figure(at, 1)["data"]}
    with demo_engine.connect() as conn:
        end = conn.execute(text("SELECT end_date FROM program")).scalar()
    assert _values(burnup["Planned (due by week end)"]["y"])[-1] == _live_count(
        demo_engine, "due_date <= :end", end=end
    )
    has_form = bool(at.get("form"))
    assert has_form == (role != "executive")


def test_executive_is_told_the_page_is_read_only(open_page):
    at = open_page("plan", "executive")
    assert any("Read only" in c.value for c in at.caption)
    assert not [b for b in at.button if b.label == "Save"]


def test_filters_narrow_the_table_in_sql(open_page, demo_engine):
    at = open_page("plan", "security_lead")
    at.multiselect(key="plan_statuses").set_value(["done"]).run()
    assert len(_table(at, "Slip")) == _live_count(demo_engine, "status = 'done'")
    at.multiselect(key="plan_statuses").set_value([]).run()
    at.checkbox(key="plan_overdue").check().run()
    with demo_engine.connect() as conn:
        end = conn.execute(text("SELECT end_date FROM program")).scalar()
    assert len(_table(at, "Slip")) == _live_count(
        demo_engine, "status <> 'done' AND due_date < :end", end=end
    )


def test_edit_through_the_form_saves_and_audits(open_page, demo_engine):
    at, item_id = _open_item(open_page, demo_engine)
    before = _item(demo_engine, item_id)
    at.selectbox(key="plan_edit_status").set_value("at_risk")
    at.number_input(key="plan_edit_percent").set_value(35)
    at.text_area(key="plan_edit_comment").input("Waiting on the vendor <b>now</b>")
    at.button[[b.label for b in at.button].index("Save")].click().run()
    assert not at.exception
    after = _item(demo_engine, item_id)
    assert after == {
        "status": "at_risk",
        "percent": 35,
        "comment": "Waiting on the vendor <b>now</b>",
        "version": before["version"] + 1,
        "updated_by": ACTORS["security_lead"].email,
    }
    assert _audits(demo_engine, item_id) == 1
    assert any(f"Saved {item_id}" in s.value for s in at.success)
    history = _table(at, "Changes")
    assert "status:" in history["Changes"].iloc[0]


def test_the_form_shows_the_saved_values_after_another_page_and_saving_wipes_nothing(open_page, demo_engine):
    at = open_page("plan", "security_lead")
    item_id = at.selectbox(key="plan_item").value  # the item the page loads first
    at.text_area(key="plan_edit_comment").input("Vendor sign-off is in")
    at.button[[b.label for b in at.button].index("Save")].click().run()
    saved = _item(demo_engine, item_id)
    assert saved["comment"] == "Vendor sign-off is in"
    # Another page and back: Streamlit forgets the values of the form's widgets, while the page
    # still holds the item it loaded.
    at.switch_page("pages/overview.py").run()
    at.switch_page("pages/plan.py").run()
    assert at.text_area(key="plan_edit_comment").value == "Vendor sign-off is in"
    at.button[[b.label for b in at.button].index("Save")].click().run()
    assert _item(demo_engine, item_id) == saved  # nothing was sent: the comment was not wiped
    assert any("Nothing changed." in s.value for s in at.success)


def test_the_picked_item_and_its_values_are_kept_after_another_page(open_page, demo_engine):
    at, item_id = _open_item(open_page, demo_engine)  # not the item the page picks first
    assert at.selectbox(key="plan_item").options[0] != item_id
    at.text_area(key="plan_edit_comment").input("Still waiting on the vendor")
    at.button[[b.label for b in at.button].index("Save")].click().run()
    at.switch_page("pages/overview.py").run()
    at.switch_page("pages/plan.py").run()
    assert at.selectbox(key="plan_item").value == item_id
    assert at.text_area(key="plan_edit_comment").value == "Still waiting on the vendor"


def test_conflict_shows_their_change_and_keeps_my_input(open_page, demo_engine):
    at, item_id = _open_item(open_page, demo_engine)
    loaded_version = _item(demo_engine, item_id)["version"]
    at.number_input(key="plan_edit_percent").set_value(55)
    at.text_area(key="plan_edit_comment").input("my unsaved note")
    # Someone else saves while this form is open.
    with write_session(demo_engine) as s:
        update_plan_item(
            session=s,
            actor=OTHER,
            item_id=item_id,
            expected_version=loaded_version,
            status="blocked",
            comment="theirs",
        )
    at.button[[b.label for b in at.button].index("Save")].click().run()
    assert not at.exception
    assert any("changed by someone else" in e.value for e in at.error)
    assert any(OTHER.email in t.value and "status:" in t.value for t in at.text)
    # Nothing of mine landed, and my input is still in the form.
    assert _item(demo_engine, item_id)["comment"] == "theirs"
    assert at.number_input(key="plan_edit_percent").value == 55
    assert at.text_area(key="plan_edit_comment").value == "my unsaved note"
    assert _table(at, "Changes")["By"].iloc[0] == OTHER.email  # history no longer cached
    mine = _table(at, "you loaded").set_index("field")
    assert sorted(mine.index) == ["comment", "percent"]  # only what I changed
    assert mine.loc["comment", "yours"] == "my unsaved note" and mine.loc["comment", "now saved"] == "theirs"

    at.button(key="plan_reapply").click().run()
    assert not at.exception
    after = _item(demo_engine, item_id)
    # My two changes land on top of theirs; their status change survives.
    assert (after["status"], after["percent"], after["comment"]) == ("blocked", 55, "my unsaved note")
    assert after["version"] == loaded_version + 2
    assert _audits(demo_engine, item_id) == 2
