"""Each role signs in, sees exactly its pages in the menu, opens each one, and no other by address."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from lockstep.access import PAGES, pages_for
from lockstep.models import ROLES
from tests.e2e.conftest import screenshot, sign_in

pytestmark = pytest.mark.e2e

# A page's heading is its menu title, except where the page says more.
HEADINGS = {key: title for key, (title, _) in PAGES.items()}
HEADINGS |= {"e2ee": "End-to-end encryption", "audit": "Audit log"}


def _menu_titles(page):
    """The titles of the sidebar's page links (the label beside each icon)."""
    return (
        page.get_by_test_id("stSidebar")
        .get_by_test_id("stPageLink-NavLink")
        .get_by_test_id("stMarkdownContainer")
    )


def _heading(page, key: str):
    return page.get_by_test_id("stMain").get_by_role("heading", name=HEADINGS[key], exact=True, level=1)


@pytest.mark.parametrize("role", ROLES)
def test_role_sees_and_opens_exactly_its_pages(new_page, app_url, role):
    page = new_page()
    sign_in(page, app_url, role)
    allowed = pages_for(role)
    expect(_heading(page, allowed[0])).to_be_visible()
    # Exactly these links, in this order (waits until the menu is drawn).
    expect(_menu_titles(page)).to_have_text([PAGES[key][0] for key in allowed])

    for key in allowed:
        # The icon is aria-hidden, so a link's accessible name is its title.
        page.get_by_test_id("stSidebar").get_by_role("link", name=PAGES[key][0], exact=True).click()
        expect(_heading(page, key)).to_be_visible()
        expect(page.get_by_text("This page is not available to you.")).to_have_count(0)
        expect(page.get_by_test_id("stException")).to_have_count(0)
        screenshot(page, f"{role}-{key}")


@pytest.mark.parametrize("role, key", [(r, k) for r in ROLES for k in PAGES if k not in pages_for(r)])
def test_role_cannot_open_another_page_by_address(new_page, app_url, role, key):
    page = new_page()
    # An address is a new session: it asks for sign-in, then may only show an allowed page.
    sign_in(page, app_url, role, path=key)
    home = pages_for(role)[0]
    expect(_heading(page, home)).to_be_visible()
    expect(_heading(page, key)).to_have_count(0)
    assert page.url.rstrip("/") == app_url


@pytest.mark.parametrize("role", ROLES)
def test_every_allowed_page_opens_by_its_own_address(new_page, app_url, role):
    # The first page is also served at "/", and its own address (/overview) must work too:
    # people bookmark and share the address bar, not the root.
    page = new_page()
    first, *others = pages_for(role)
    sign_in(page, app_url, role, path=first)
    for key in [first, *others]:
        page.goto(f"{app_url}/{key}")
        expect(_heading(page, key)).to_be_visible()
        expect(page.get_by_text("Page not found")).to_have_count(0)
        expect(page.get_by_test_id("stException")).to_have_count(0)


@pytest.mark.parametrize("role", ROLES)
def test_signing_in_lands_on_the_page_the_address_asked_for(new_page, app_url, role):
    # A bookmarked /weekly (or a link in a mail) asks for sign-in, then shows that page.
    key = pages_for(role)[-1]
    page = new_page()
    sign_in(page, app_url, role, path=key)
    expect(_heading(page, key)).to_be_visible()
    assert page.url.rstrip("/") == f"{app_url}/{key}"
