"""At 1280x720 every page, for every role, shows what a person reads first whole and in words.

Each role signs in and opens each of its pages (and a share link) in a 1280x720 window:
no metric value is cut off, no table has columns hidden off its right edge (its
scroller is no wider than its box), and no table cell or metric shows `None`, `nan` or a
raw status code such as `in_progress`. Cells are read from the accessible grid Streamlit
draws beside each table's canvas, which holds the cells on screen.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import expect
from sqlalchemy import text

from lockstep.access import PAGES, pages_for
from lockstep.db import write_session
from lockstep.models import PLAN_STATUSES, ROLES
from lockstep.permissions import SYSTEM
from lockstep.services.share_links import create_share_link
from tests.e2e.conftest import PAGE_MS, TABLES_PAINTED, sign_in, wait_idle

pytestmark = pytest.mark.e2e

SMALL = {"width": 1280, "height": 720}
# Codes that must never reach a reader: plan statuses, stage and role codes, empty values.
RAW = sorted(set(PLAN_STATUSES) - {"done", "blocked"}) + [
    "legacy_cipher", "clients_upgraded", "gcm_enabled", "gcm_enforced", "rolled_back",
    "security_lead", "account_manager", "None", "nan", "NaT",
]  # fmt: skip

# What overflows, as the browser measures it. A metric value truncates with an ellipsis in
# its inner block; a table's scroller is wider than its box when columns are off the edge.
MEASURE = """() => {
  const out = {metrics: [], tables: [], cells: []};
  for (const m of document.querySelectorAll('[data-testid=stMetricValue]')) {
    for (const el of [m, ...m.querySelectorAll('*')]) {
      if (el.scrollWidth > el.clientWidth + 1) { out.metrics.push(m.textContent); break; }
    }
  }
  for (const df of document.querySelectorAll('[data-testid=stDataFrame]')) {
    const sc = df.querySelector('.dvn-scroller');
    const heads = [...df.querySelectorAll('[role=columnheader]')].map(h => h.textContent.trim());
    if (sc && sc.scrollWidth > sc.clientWidth + 1) out.tables.push(heads.join(' | '));
    const cells = df.querySelectorAll('[role=gridcell], [role=columnheader]');
    for (const c of cells) out.cells.push(c.textContent.trim());
  }
  for (const m of document.querySelectorAll('[data-testid=stMetricValue], [data-testid=stMetricLabel]')) {
    out.cells.push(m.textContent.trim());
  }
  return out;
}"""


def _settled(page) -> None:
    """The script run is over, nothing is still loading, and every table has painted."""
    wait_idle(page)
    expect(page.locator("[data-testid^=stSkeleton]")).to_have_count(0)
    page.wait_for_function(TABLES_PAINTED, timeout=PAGE_MS)


def _problems(page, where: str) -> list[str]:
    found = page.evaluate(MEASURE)
    problems = [f"{where}: metric value cut off: {m!r}" for m in found["metrics"]]
    problems += [f"{where}: table wider than its box: {t!r}" for t in found["tables"]]
    problems += [f"{where}: raw value {c!r}" for c in found["cells"] if c in RAW]
    return problems


@pytest.mark.parametrize("role", ROLES)
def test_every_page_fits_and_reads_in_words_at_1280(new_page, app_url, role):
    page = new_page()
    page.set_viewport_size(SMALL)
    sign_in(page, app_url, role)
    problems: list[str] = []
    for key in pages_for(role):
        page.get_by_test_id("stSidebar").get_by_role("link", name=PAGES[key][0], exact=True).click()
        expect(page.get_by_test_id("stMain").get_by_role("heading", level=1).first).to_be_visible()
        _settled(page)
        problems += _problems(page, f"{role} {key}")
    assert problems == []


def test_share_page_fits_and_has_no_menu_at_1280(new_page, app_url, e2e_engine):
    with write_session(e2e_engine) as session:
        ext = session.execute(text("SELECT external_id FROM tenants ORDER BY id LIMIT 1")).scalar()
        _, token = create_share_link(session=session, actor=SYSTEM, tenant_external_id=ext)
    page = new_page()
    page.set_viewport_size(SMALL)
    page.goto(f"{app_url}/share?token={token}")
    expect(page.get_by_text("Security migration status")).to_be_visible()
    _settled(page)
    assert _problems(page, "share") == []
    # Nothing of Streamlit's own: no "⋮" menu on the customer's page, nor at sign-in.
    expect(page.get_by_test_id("stMainMenu")).to_have_count(0)
    signin = new_page()
    signin.goto(app_url)
    expect(signin.get_by_role("button", name="Sign in")).to_be_visible()
    expect(signin.get_by_test_id("stMainMenu")).to_have_count(0)
