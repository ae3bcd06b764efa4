"""An admin uploads spreadsheets through the page: an XLSX is read like its CSV, a bad CSV is refused
with every error offered as a file, and nothing in the database changes when nothing should."""

from __future__ import annotations

import pytest
from openpyxl import Workbook
from playwright.sync_api import expect
from sqlalchemy import text

from tests.e2e.conftest import screenshot, sign_in, wait_idle

pytestmark = pytest.mark.e2e

HEADER = ["external_id", "name", "tier", "region", "seats", "account_manager", "client_version", "features"]


def _tenant_rows(engine, n: int) -> list[list]:
    """The first `n` tenants exactly as they are stored, as rows of a tenants file."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT t.external_id, t.name, t.tier, t.region, t.seats, t.account_manager, "
                "t.client_version, (SELECT group_concat(f.feature, '|') FROM tenant_features f "
                "WHERE f.tenant_id = t.id) FROM tenants t ORDER BY t.id LIMIT :n"
            ),
            {"n": n},
        ).all()
    return [list(r) for r in rows]


def _count(engine, table: str) -> int:
    with engine.connect() as conn:
        return conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()


def _upload(page, kind: str, path) -> None:
    page.get_by_text("Import tenants or events (CSV or XLSX)").click()
    page.get_by_test_id("stRadio").get_by_text(kind, exact=True).click()
    page.get_by_test_id("stFileUploaderDropzoneInput").set_input_files(str(path))
    # The upload is sent in the background: Import before it arrives would submit no file.
    expect(page.get_by_test_id("stFileUploader").get_by_text(path.name)).to_be_visible()
    page.get_by_role("button", name="Import").click()
    wait_idle(page)


def test_admin_uploads_an_xlsx_on_customers_and_a_second_upload_adds_nothing(
    new_page, app_url, e2e_engine, tmp_path
):
    wb = Workbook()
    wb.active.append(HEADER)
    for row in _tenant_rows(e2e_engine, 3):
        wb.active.append(row)
    path = tmp_path / "tenants.xlsx"
    wb.save(path)
    tenants, audit = _count(e2e_engine, "tenants"), _count(e2e_engine, "audit_log")

    page = new_page()
    sign_in(page, app_url, "admin", path="customers")
    _upload(page, "tenants", path)
    expect(
        page.get_by_text("tenants.xlsx: 3 row(s) read; added 0, updated 0, skipped 3")
    ).to_be_visible()
    screenshot(page, "admin-customers-upload")
    # The same tenants, unchanged: nothing added; the import itself is audited.
    assert _count(e2e_engine, "tenants") == tenants
    assert _count(e2e_engine, "audit_log") == audit + 1


def test_a_refused_csv_on_rollout_shows_its_errors_and_offers_all_of_them(
    new_page, app_url, e2e_engine, tmp_path
):
    path = tmp_path / "week.csv"
    lines = [f"ghost-{i},encryption,clients_upgraded,2020-05-01,upload," for i in range(3)]
    path.write_text("\n".join(["tenant_id,track,stage,occurred_at,source,note", *lines]) + "\n")
    events = _count(e2e_engine, "rollout_events")

    page = new_page()
    sign_in(page, app_url, "admin", path="rollout")
    _upload(page, "events", path)
    expect(page.get_by_text("week.csv: 3 bad value(s); nothing was imported.")).to_be_visible()
    with page.expect_download() as download:
        page.get_by_role("button", name="Download every error (CSV)").click()
    body = download.value.path().read_text(encoding="utf-8-sig")
    assert [line.split(",")[2] for line in body.splitlines()[1:]] == ["ghost-0", "ghost-1", "ghost-2"]
    assert _count(e2e_engine, "rollout_events") == events
