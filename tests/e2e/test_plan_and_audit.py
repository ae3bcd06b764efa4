"""A security lead edits a plan item in the browser; it survives a reload; the admin's audit page shows it."""

from __future__ import annotations

import json
import re
import uuid

import pytest
from playwright.sync_api import expect
from sqlalchemy import text

from tests.e2e.conftest import EMAILS, screenshot, sign_in

pytestmark = pytest.mark.e2e

EDIT_HEADING = re.compile(r"Edit (\S+) \(loaded at version (\d+)\)")


def _open_plan_form(page):
    """Go to the Plan page and return (item id, version) of the item loaded in the edit form."""
    page.get_by_test_id("stSidebar").get_by_role("link", name="Plan", exact=True).click()
    heading = page.get_by_test_id("stForm").get_by_text(EDIT_HEADING)
    expect(heading).to_be_visible()
    item_id, version = EDIT_HEADING.search(heading.inner_text()).groups()
    return item_id, int(version)


def test_lead_edit_survives_reload_and_shows_in_the_audit_log(new_page, app_url, e2e_engine):
    comment = f"Checked in a real browser ({uuid.uuid4().hex[:8]}): vendor sign-off is in"
    page = new_page()
    sign_in(page, app_url, "security_lead")
    item_id, version = _open_plan_form(page)

    page.get_by_test_id("stForm").get_by_role("textbox", name="Comment").fill(comment)
    page.get_by_test_id("stForm").get_by_role("button", name="Save").click()
    expect(page.get_by_text(f"Saved {item_id} (version {version + 1}).")).to_be_visible()

    # A reload is a new Streamlit session, still signed in (the session cookie): the item
    # loads with the saved comment.
    page.goto(f"{app_url}/plan")
    signed_in = f"Signed in as {EMAILS['security_lead']}"
    expect(page.get_by_test_id("stSidebar").get_by_text(signed_in)).to_be_visible()
    assert _open_plan_form(page) == (item_id, version + 1)
    expect(page.get_by_test_id("stForm").get_by_role("textbox", name="Comment")).to_have_value(comment)
    screenshot(page, "security_lead-plan-after-edit")

    with e2e_engine.connect() as conn:
        saved = conn.execute(
            text("SELECT comment, version, updated_by FROM plan_items WHERE id = :i"), {"i": item_id}
        ).one()
        entry = conn.execute(
            text(
                "SELECT id, actor, action, after FROM audit_log WHERE entity_type = 'plan_item' "
                "AND entity_id = :i ORDER BY id DESC LIMIT 1"
            ),
            {"i": item_id},
        ).one()
    assert tuple(saved) == (comment, version + 1, EMAILS["security_lead"])
    after = entry.after if isinstance(entry.after, dict) else json.loads(entry.after)
    assert entry.actor == EMAILS["security_lead"] and comment in json.dumps(after, ensure_ascii=False)

    admin = new_page()
    sign_in(admin, app_url, "admin")
    admin.get_by_test_id("stSidebar").get_by_role("link", name="Audit", exact=True).click()
    box = admin.get_by_role("textbox", name="Entity id (exact)")
    box.fill(item_id)
    box.press("Enter")
    # The newest matching entry is shown in full: who, what, which item, and the new comment.
    expect(admin.get_by_test_id("stText").filter(has_text=f"#{entry.id} ·")).to_contain_text(
        f"{EMAILS['security_lead']} · {entry.action} · plan_item {item_id}"
    )
    expect(admin.get_by_test_id("stCode").filter(has_text=comment)).to_have_count(1)
    screenshot(admin, "admin-audit-plan-edit")
