"""Reports: the weekly report (PDF, HTML) and the customer status PDF, read back and checked against SQL.

The PDFs are opened with pypdf and their text compared with numbers counted here, in
SQL written for the test (not through the queries the reports use). Most tests swap the
chart drawing for a tiny PNG, since drawing is the same on every backend and costs
seconds; one test draws the charts for real in Chromium.
"""

from __future__ import annotations

import io
import re
import shutil
from datetime import date, timedelta
from decimal import Decimal

import pytest
from PIL import Image
from pypdf import PdfReader
from sqlalchemy import text

from lockstep.config import ROOT
from lockstep.db import read_session, write_session
from lockstep.demo import load_demo
from lockstep.errors import NotFoundError
from lockstep.permissions import SYSTEM, Actor
from lockstep.plan import sync_plan_file
from lockstep.reports import weekly as weekly_module
from lockstep.reports.customer import customer_report
from lockstep.reports.weekly import (
    weekly_report,
    weekly_report_html,
    weekly_report_images,
    weekly_report_pdf,
)
from lockstep.services.notes import add_note
from lockstep.services.snapshots import backfill_weeks
from tests.conftest import IN_CI

N, SEED = 150, 3
WEEK = date(2020, 5, 18)  # 2020-W21, the week before the cut-over
DANA = Actor("dana.lee@lockstep.example", "account_manager")
HOSTILE = '<img src=x onerror=alert(1)> Ñandú & "Malmö" <script>alert(2)</script> '
STAGE_WORDS = {
    "legacy_cipher": "Legacy cipher",
    "clients_upgraded": "Clients upgraded",
    "gcm_enabled": "GCM enabled",
    "gcm_enforced": "GCM enforced",
    "eligible": "Eligible",
    "pilot": "Pilot",
    "enabled": "Enabled",
    "blocked": "Blocked",
    "rolled_back": "Rolled back",
}
EXTERNAL_URL = re.compile(r"""(?:src|href|action|srcset)\s*=\s*["']?\s*(?:https?:)?//""", re.IGNORECASE)


def _png(width: int = 8, height: int = 4) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), "#1e88e5").save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def world(engine):
    """The shipped plan, a small demo and every ended week closed."""
    sync_plan_file(ROOT / "plan" / "90-day-plan.yaml", engine=engine)
    load_demo(engine=engine, tenants=N, seed=SEED, actor=SYSTEM)
    with write_session(engine) as session:
        backfill_weeks(session=session, actor=SYSTEM)
    return engine


@pytest.fixture
def no_browser(monkeypatch):
    """Charts become a tiny PNG each (counted), instead of being drawn in Chromium."""
    drawn: list[int] = []

    def fake(figures, **_):
        drawn.append(len(figures))
        return [_png() for _ in figures]

    monkeypatch.setattr(weekly_module, "figures_to_png", fake)
    return drawn


def _one(engine, sql: str, **params) -> tuple:
    """One row; PostgreSQL's sum() gives Decimal, so whole numbers come back as int."""
    with engine.connect() as conn:
        row = conn.execute(text(sql), params).one()
    return tuple(int(v) if isinstance(v, Decimal) else v for v in row)


def _flat(pdf: bytes) -> str:
    """All the PDF's text, whitespace collapsed (table cells wrap over lines)."""
    return " ".join(" ".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf)).pages).split())


def _share(done: int, total: int) -> str:
    return f"{done:,} of {total:,} ({100.0 * done / total:.1f}%)"


def _weekly_pdf(engine, week: date = WEEK) -> bytes:
    with read_session(engine) as session:
        return weekly_report_pdf(weekly_report(session=session, actor=SYSTEM, week_start=week))


def test_weekly_pdf_names_the_week_and_its_numbers_match_sql(world, no_browser):
    pdf = _weekly_pdf(world)
    flat = _flat(pdf)
    assert "Weekly report: Week 21, 2020" in flat
    assert "2020-W21, Monday 18 May 2020 to Sunday 24 May 2020" in flat
    assert "compared with Week 20, 2020 (2020-W20)" in flat

    before = WEEK - timedelta(days=7)
    enforced = {}
    for w in (WEEK, before):
        enforced[w] = tuple(
            _one(
                world,
                "SELECT coalesce(sum(CASE WHEN stage_code = 'gcm_enforced' THEN n_current ELSE 0 END), 0), "
                "sum(n_current) FROM weekly_snapshots WHERE week_start = :w AND track_code = 'encryption'",
                w=w,
            )
        )
    (done, total), (done_b, total_b) = enforced[WEEK], enforced[before]
    assert total == N
    pts = 100.0 * done / total - 100.0 * done_b / total_b
    assert (
        f"Tenants at GCM enforced {_share(done, total)} {_share(done_b, total_b)} "
        f"{pts:+.1f} pts ({done - done_b:+,})"
    ) in flat

    paid = {}
    for w in (WEEK, before):
        paid[w] = tuple(
            _one(
                world,
                "SELECT coalesce(sum(CASE WHEN ws.stage_code = 'enabled' THEN ws.n_current ELSE 0 END), 0), "
                "sum(ws.n_current) FROM weekly_snapshots ws JOIN tiers t ON t.code = ws.tier "
                "WHERE ws.week_start = :w AND ws.track_code = 'e2ee' AND t.paid = :yes",
                w=w,
                yes=True,
            )
        )
    assert f"Paid tenants with E2EE enabled {_share(*paid[WEEK])} {_share(*paid[before])}" in flat

    sunday, sunday_b = WEEK + timedelta(days=6), before + timedelta(days=6)
    plan = _one(
        world,
        "SELECT sum(CASE WHEN status = 'done' AND done_date <= :s THEN 1 ELSE 0 END), "
        "sum(CASE WHEN due_date <= :s THEN 1 ELSE 0 END), "
        "sum(CASE WHEN status = 'done' AND done_date <= :b THEN 1 ELSE 0 END), "
        "sum(CASE WHEN due_date <= :b THEN 1 ELSE 0 END) FROM plan_items WHERE retired_at IS NULL",
        s=sunday,
        b=sunday_b,
    )
    assert (
        f"Plan items done / due by the week's end {plan[0]} / {plan[1]} {plan[2]} / {plan[3]} "
        f"{plan[0] - plan[2]:+,} done, {plan[1] - plan[3]:+,} due"
    ) in flat

    # The stage tables: every stage of both tracks, this week, the week before and the change.
    with world.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT ws.track_code, ws.stage_code, "
                "sum(CASE WHEN ws.week_start = :w THEN ws.n_current ELSE 0 END), "
                "sum(CASE WHEN ws.week_start = :b THEN ws.n_current ELSE 0 END) "
                "FROM weekly_snapshots ws WHERE ws.week_start IN (:w, :b) "
                "GROUP BY ws.track_code, ws.stage_code HAVING sum(CASE WHEN ws.week_start = :w "
                "THEN 1 ELSE 0 END) > 0"
            ),
            {"w": WEEK, "b": before},
        ).all()
    assert len(rows) >= 5
    for _, stage, now, prev in rows:
        assert f"{STAGE_WORDS[stage]} {now:,} {prev:,} {now - prev:+,}" in flat, stage
    assert no_browser == [5]  # forecast, a stage mix per track, E2EE adoption, burn-up


def test_weekly_top_risks_match_sql(world, no_browser):
    flat = _flat(_weekly_pdf(world))
    # The program is over (it ended 2020-06-30), so "today" is its last day.
    today = date(2020, 6, 30)
    overdue = _one(
        world,
        "SELECT count(*) FROM plan_items WHERE retired_at IS NULL AND due_date < :t "
        "AND NOT (status = 'done' AND (done_date IS NULL OR done_date <= :t))",
        t=today,
    )[0]
    assert "Top risks today (2020-06-30)" in flat
    assert f"Overdue plan items: {overdue} (not done and due before today)" in flat
    stuck = _one(
        world,
        "SELECT count(*) FROM current_state WHERE track_code = 'encryption' "
        "AND stage_code IN ('blocked', 'rolled_back', 'legacy_cipher')",
    )[0]
    assert f"Stuck tenants: {stuck:,} (blocked, rolled back" in flat


def test_the_first_closed_week_has_nothing_to_compare_with(world, no_browser):
    with world.connect() as conn:
        first = conn.execute(text("SELECT min(week_start) FROM snapshot_weeks")).scalar_one()
    first = date.fromisoformat(str(first))
    flat = _flat(_weekly_pdf(world, first))
    year, week, _ = first.isocalendar()
    assert f"Weekly report: Week {week}, {year}" in flat
    assert "the first closed week: nothing to compare with" in flat


def test_a_week_that_is_not_closed_has_no_report(world, no_browser):
    with read_session(world) as session, pytest.raises(NotFoundError, match="2020-W40 is not closed"):
        weekly_report(session=session, actor=SYSTEM, week_start=date(2020, 9, 28))
    assert no_browser == []


def test_weekly_html_is_self_contained_and_shows_hostile_text_as_text(world, no_browser):
    with world.begin() as conn:
        # Every stuck tenant (the risk tables list the largest) and every overdue item gets a hostile name.
        conn.execute(
            text(
                "UPDATE tenants SET name = :h || external_id WHERE id IN (SELECT tenant_id "
                "FROM current_state WHERE track_code = 'encryption' "
                "AND stage_code IN ('blocked', 'rolled_back', 'legacy_cipher'))"
            ),
            {"h": HOSTILE},
        )
        conn.execute(
            text("UPDATE plan_items SET title = :h WHERE status <> 'done' AND due_date < :t"),
            {"h": HOSTILE, "t": date(2020, 6, 30)},
        )
    with read_session(world) as session:
        report = weekly_report(session=session, actor=SYSTEM, week_start=WEEK)
    page = weekly_report_html(report).decode("utf-8")

    assert page.startswith("<!DOCTYPE html>")
    assert EXTERNAL_URL.search(page) is None
    assert "http://" not in page and "https://" not in page
    assert "<script" not in page.lower() and "<link" not in page.lower() and "@import" not in page
    images = re.findall(r"<img\b[^>]*>", page)
    assert len(images) == 5
    assert all('src="data:image/png;base64,' in tag for tag in images)
    # The hostile text is there, as text: escaped, never markup.
    assert "&lt;img src=x onerror=alert(1)&gt; Ñandú &amp; &quot;Malmö&quot; &lt;script&gt;" in page
    assert "<img src=x" not in page
    assert "Weekly report: Week 21, 2020" in page

    # And in the PDF, verbatim (accents included).
    flat = _flat(weekly_report_pdf(report))
    assert '<img src=x onerror=alert(1)> Ñandú & "Malmö"' in flat


def _dana_tenant(engine) -> str:
    """One of Dana's tenants that is neither blocked nor rolled back (so every stage reached has a date)."""
    with engine.connect() as conn:
        return conn.execute(
            text(
                "SELECT t.external_id FROM tenants t WHERE t.account_manager = :m AND NOT EXISTS ("
                "SELECT 1 FROM current_state cs WHERE cs.tenant_id = t.id "
                "AND cs.stage_code IN ('blocked', 'rolled_back')) ORDER BY t.external_id LIMIT 1"
            ),
            {"m": DANA.email},
        ).scalar_one()


def test_customer_pdf_shows_the_tenant_its_stages_and_notes(world):
    ext = _dana_tenant(world)
    name = "Sofía Ñandú Malmö GmbH <b>& Co</b>"
    with world.begin() as conn:
        conn.execute(text("UPDATE tenants SET name = :n WHERE external_id = :e"), {"n": name, "e": ext})
    with write_session(world) as session:
        add_note(
            session=session,
            actor=DANA,
            tenant_external_id=ext,
            body='=HYPERLINK("http://x") <i>not italic</i>: call the CISO on Monday',
        )
    with read_session(world) as session:
        pdf = customer_report(session=session, actor=DANA, tenant_external_id=ext)

    reader = PdfReader(io.BytesIO(pdf))
    assert reader.metadata.title == f"Security migration status: {name}"
    flat = _flat(pdf)
    tier_name, seats, region = _one(
        world,
        "SELECT tiers.name, t.seats, t.region FROM tenants t JOIN tiers ON tiers.code = t.tier "
        "WHERE t.external_id = :e",
        e=ext,
    )
    assert flat.startswith(name)
    assert f"account {ext} · {tier_name} · region {region} · {seats:,} seats" in flat
    with world.connect() as conn:
        stages = conn.execute(
            text(
                "SELECT tr.name, ts.name FROM current_state cs JOIN tenants t ON t.id = cs.tenant_id "
                "JOIN tracks tr ON tr.code = cs.track_code JOIN track_stages ts ON ts.track_code = "
                "cs.track_code AND ts.code = cs.stage_code WHERE t.external_id = :e ORDER BY tr.position"
            ),
            {"e": ext},
        ).all()
        reached = conn.execute(
            text(
                "SELECT ts.name, max(ev.occurred_at) FROM rollout_events ev "
                "JOIN tenants t ON t.id = ev.tenant_id "
                "JOIN track_stages ts ON ts.track_code = ev.track_code AND ts.code = ev.stage_code "
                "WHERE t.external_id = :e AND ts.is_side = :no GROUP BY ts.track_code, ts.name"
            ),
            {"e": ext, "no": False},
        ).all()
    assert stages, "the tenant has a state on each track"
    for track_name, stage_name in stages:
        assert f"{track_name} Now: {stage_name}" in flat
    for stage_name, at in reached:
        day = str(at)[:10]
        assert re.search(rf"{re.escape(stage_name)} yes {day}", flat), (stage_name, day)
    assert '=HYPERLINK("http://x") <i>not italic</i>: call the CISO on Monday' in flat
    assert f"Your account manager: {DANA.email}" in flat


def test_a_manager_gets_no_report_on_another_managers_tenant(world):
    with world.connect() as conn:
        other = conn.execute(
            text("SELECT external_id FROM tenants WHERE account_manager <> :m ORDER BY external_id LIMIT 1"),
            {"m": DANA.email},
        ).scalar_one()
    with read_session(world) as session, pytest.raises(NotFoundError, match=f"no tenant with id '{other}'"):
        customer_report(session=session, actor=DANA, tenant_external_id=other)
    with read_session(world) as session:
        assert customer_report(session=session, actor=SYSTEM, tenant_external_id=other).startswith(b"%PDF")


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_the_charts_are_drawn_for_real(world):
    if shutil.which("chromium") is None:
        if IN_CI:
            pytest.fail("kaleido needs Chromium on PATH: apt-get install chromium")
        pytest.skip("kaleido needs Chromium on PATH: apt-get install chromium")
    with read_session(world) as session:
        report = weekly_report(session=session, actor=SYSTEM, week_start=WEEK)
    images = weekly_report_images(report)
    assert list(images) == list(report.figures)
    for key, png in images.items():
        picture = Image.open(io.BytesIO(png))
        fig_height = report.figures[key].layout.height or 420
        # 900 px wide at scale 2, and as tall as the figure says: nothing cut off.
        assert picture.format == "PNG" and picture.size == (1800, 2 * fig_height), key
        # Not blank: a drawn chart has many colours (bars, lines, text).
        assert len(picture.convert("RGB").getcolors(maxcolors=1 << 20) or []) > 50, key
    pdf = weekly_report_pdf(report, images)
    assert sum(len(p.images) for p in PdfReader(io.BytesIO(pdf)).pages) == len(images)
