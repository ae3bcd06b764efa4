"""The program picker: with a second program synced, every page shows the chosen program's numbers."""

from __future__ import annotations

from lockstep.config import ROOT
from lockstep.plan import sync_plan_file

SECOND = ROOT / "tests" / "fixtures" / "e2ee-preview-2020.yaml"
A, B = "zoom-2020", "e2ee-preview-2020"


def _items_in_plan(at) -> str:
    return next(m.value for m in at.metric if m.label == "Items in the plan")


def test_one_program_shows_no_picker(open_page):
    at = open_page("overview", "executive")
    assert not at.exception
    assert [s for s in at.sidebar.selectbox if s.label == "Program"] == []
    assert _items_in_plan(at) == "28"


def test_switching_program_changes_the_pages_and_is_remembered(open_page, demo_engine):
    sync_plan_file(SECOND, engine=demo_engine)
    at = open_page("overview", "security_lead")
    assert not at.exception
    picker = at.sidebar.selectbox(key="program_picker")
    # Today (the real date) is in neither window: the default is the one that starts last.
    assert (
        picker.value == B
        and picker.options == ["E2EE technical preview (late 2020)", "Zoom 90-day security plan (2020)"][::-1]
    )
    assert _items_in_plan(at) == "4"
    assert any("no encryption track" in i.value for i in at.info)

    picker.set_value(A).run()
    assert not at.exception
    assert _items_in_plan(at) == "28"
    assert not any("no encryption track" in i.value for i in at.info)

    # Another page keeps the choice: the plan's items are the first program's. (AppTest draws
    # no sidebar after switch_page, so the page's own content is what is checked.)
    at.switch_page("pages/plan.py")
    at.run()
    assert not at.exception
    assert "Today is Tue 30 Jun 2020" in at.caption[0].value  # the first program's last day
    items = at.selectbox(key="plan_item").options
    assert items and all("Z" in o for o in items)


def test_the_plan_page_opens_on_the_default_program(open_page, demo_engine):
    sync_plan_file(SECOND, engine=demo_engine)
    at = open_page("plan", "security_lead")
    assert not at.exception
    items = at.selectbox(key="plan_item").options
    assert len(items) == 4 and all("P0" in o for o in items)


def test_weekly_of_a_program_without_an_encryption_track_says_so(open_page, demo_engine):
    from lockstep.db import write_session
    from lockstep.permissions import SYSTEM
    from lockstep.services.snapshots import backfill_weeks

    sync_plan_file(SECOND, engine=demo_engine)
    with write_session(demo_engine) as session:
        assert backfill_weeks(session=session, actor=SYSTEM, program=B)
    at = open_page("weekly", "executive")
    assert not at.exception
    assert any("no encryption track, so there is no cut-over forecast" in i.value for i in at.info)
    # No GCM milestones that could only read "unknown", and no empty forecast chart.
    assert [m.label for m in at.metric] == ["Plan items done"]
    charts = [c.key for c in at.get("plotly_chart")]
    assert "weekly_mix" in charts and "weekly_forecast" not in charts
