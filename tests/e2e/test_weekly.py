"""An executive opens the Weekly page: every chart is drawn, and the weekly report downloads."""

from __future__ import annotations

from datetime import date

import pytest
from playwright.sync_api import expect
from pypdf import PdfReader
from sqlalchemy import text

from lockstep.clock import week_label
from tests.e2e.conftest import REPORT_MS, screenshot, sign_in, wait_idle

pytestmark = pytest.mark.e2e

# The Weekly page's charts: forecast, stage mix, paid E2EE adoption, plan burn-up.
WEEKLY_CHARTS = 4


def test_executive_sees_every_weekly_chart_drawn_and_gets_the_report(new_page, app_url, e2e_engine):
    page = new_page()
    sign_in(page, app_url, "executive")
    page.get_by_test_id("stSidebar").get_by_role("link", name="Weekly", exact=True).click()
    charts = page.locator(".js-plotly-plot")
    expect(charts).to_have_count(WEEKLY_CHARTS)
    for i in range(WEEKLY_CHARTS):
        # Drawn: plotly has put at least one data trace (bars or a line) in the chart's SVG.
        expect(charts.nth(i).locator("svg.main-svg g.trace").first).to_be_attached()
        assert charts.nth(i).locator("svg.main-svg g.trace").count() > 0
        expect(charts.nth(i).locator(".main-svg .gtitle")).not_to_be_empty()
    screenshot(page, "executive-weekly-charts")

    with e2e_engine.connect() as conn:
        newest = conn.execute(text("SELECT max(week_start) FROM snapshot_weeks")).scalar_one()
    # The page opens on the newest closed week; so does its report.
    monday = date.fromisoformat(str(newest))
    label = week_label(monday)
    year, week, _ = monday.isocalendar()
    wait_idle(page)
    with page.expect_download(timeout=REPORT_MS) as dl:
        page.get_by_role("button", name="Weekly report (PDF)").click()
    assert dl.value.suggested_filename == f"lockstep-weekly-{label}.pdf"
    first_page = PdfReader(dl.value.path()).pages[0].extract_text()
    assert f"Week {week}, {year}" in first_page
