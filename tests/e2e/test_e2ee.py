"""E2EE drill-down in a real browser: the CSV holds every not-yet-enabled tenant, not just those shown."""

from __future__ import annotations

import csv
import io

import pytest
from playwright.sync_api import expect
from sqlalchemy import text

from tests.e2e.conftest import EMAILS, screenshot, sign_in, wait_idle

pytestmark = pytest.mark.e2e


def test_manager_downloads_all_their_tenants_not_yet_enabled(new_page, app_url, e2e_engine):
    me = EMAILS["account_manager"]
    with e2e_engine.connect() as conn:
        expected = conn.execute(
            text(
                "SELECT t.external_id FROM tenants t JOIN current_state cs ON cs.tenant_id = t.id "
                "WHERE cs.track_code = 'e2ee' AND cs.stage_code <> 'enabled' AND cs.account_manager = :m "
                "ORDER BY t.name, t.external_id"
            ),
            {"m": me},
        ).scalars().all()
    assert expected

    page = new_page()
    sign_in(page, app_url, "account_manager")
    page.get_by_test_id("stSidebar").get_by_role("link", name="E2EE", exact=True).click()
    n = f"{len(expected):,}"
    expect(page.get_by_text(f"{n} of {n} not yet enabled, by name.")).to_be_visible()
    wait_idle(page)
    with page.expect_download() as dl:
        page.get_by_role("button", name=f"Download all {n} (CSV)").click()
    assert dl.value.suggested_filename == f"e2ee-not-enabled-{me.split('@')[0]}.csv"
    rows = list(csv.reader(io.StringIO(dl.value.path().read_bytes().decode("utf-8-sig"), newline="")))
    assert rows[0][:2] == ["id", "name"] and rows[0][-1] == "blockers"
    assert [r[0] for r in rows[1:]] == expected
    screenshot(page, "account_manager-e2ee")
