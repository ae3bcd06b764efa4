"""An account manager downloads a customer's status, shares a link; the link shows that tenant alone."""

from __future__ import annotations

import csv
import io

import pytest
from playwright.sync_api import expect
from pypdf import PdfReader
from sqlalchemy import text

from lockstep.demo import DEMO_USERS
from tests.e2e.conftest import EMAILS, screenshot, sign_in, wait_idle

pytestmark = pytest.mark.e2e


def _tenants(engine) -> dict[str, tuple[str, str]]:
    """external_id -> (name, account manager), for every tenant."""
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT external_id, name, account_manager FROM tenants")).all()
    return {e: (n, m) for e, n, m in rows}


def _first_own_tenant(engine, manager: str) -> str:
    """The tenant the Customers page opens first for `manager`: their first by name."""
    with engine.connect() as conn:
        return conn.execute(
            text(
                "SELECT external_id FROM tenants WHERE account_manager = :m "
                "ORDER BY name, external_id LIMIT 1"
            ),
            {"m": manager},
        ).scalar_one()


def _others_shown(body: str, own: str, tenants: dict[str, tuple[str, str]]) -> list[str]:
    """Other tenants' ids or names found in `body` (a name inside this tenant's own name is no sign)."""
    own_name = tenants[own][0]
    return [
        f"{ext} {name}"
        for ext, (name, _) in tenants.items()
        if ext != own and (ext in body or (name in body and name not in own_name))
    ]


def test_manager_downloads_shares_and_the_link_shows_one_tenant(new_page, app_url, e2e_engine):
    me = EMAILS["account_manager"]
    tenants = _tenants(e2e_engine)
    ext = _first_own_tenant(e2e_engine, me)
    name = tenants[ext][0]

    page = new_page()
    sign_in(page, app_url, "account_manager")
    page.get_by_test_id("stSidebar").get_by_role("link", name="Customers", exact=True).click()
    expect(page.get_by_test_id("stText").filter(has_text=f"Account {ext} ·")).to_be_visible()
    expect(page.get_by_test_id("stMain").get_by_test_id("stText").first).to_have_text(name)

    # The PDF for the customer: the same tenant, named as typed. First: the CSV button reruns the
    # page, which replaces the PDF button's file (made on click) with a new one.
    wait_idle(page)
    with page.expect_download() as dl:
        page.get_by_role("button", name="Download this status (PDF)").click()
    assert dl.value.suggested_filename == f"status-{ext}.pdf"
    pdf_text = "\n".join(p.extract_text() for p in PdfReader(dl.value.path()).pages)
    assert name in pdf_text and ext in pdf_text
    assert _others_shown(pdf_text, ext, tenants) == []

    # The CSV: this tenant's rows only.
    with page.expect_download() as dl:
        page.get_by_role("button", name="Download this status (CSV)").click()
    assert dl.value.suggested_filename == f"status-{ext}.csv"
    rows = list(csv.reader(io.StringIO(dl.value.path().read_bytes().decode("utf-8-sig"), newline="")))
    assert rows[0] == ["section", "item", "detail", "date"]
    account = {item: detail for section, item, detail, _ in rows[1:] if section == "Account"}
    assert account["Id"] == ext
    assert account["Name"].lstrip("'") == name  # a name like "=Equals Labs" is kept from running
    assert _others_shown("\n".join(",".join(r) for r in rows), ext, tenants) == []

    # A share link, shown once.
    page.get_by_role("button", name="Create share link").click()
    expect(page.get_by_text("Link created. Copy it now")).to_be_visible()
    url = page.get_by_test_id("stCode").filter(has_text="/share?token=").inner_text().strip()
    assert url.startswith(f"{app_url}/share?token=")
    screenshot(page, "account_manager-customers-share-link")

    # The customer opens it without an account: this tenant, no menu, nobody else.
    customer = new_page()
    customer.goto(url)
    expect(customer.get_by_role("heading", name=name, exact=True, level=1)).to_be_visible()
    expect(customer.get_by_test_id("stText").filter(has_text=f"Account {ext} ·")).to_be_visible()
    # The page's last line: once it is there, the whole page is.
    # By name, with the address to write to.
    my_name = next(n for e, _, n in DEMO_USERS if e == me)
    expect(customer.get_by_text(f"Your account manager: {my_name} ({me})")).to_be_visible()
    wait_idle(customer)
    expect(customer.get_by_test_id("stSidebar")).to_have_count(0)
    expect(customer.get_by_role("link", name="Overview")).to_have_count(0)
    assert _others_shown(customer.get_by_test_id("stMain").inner_text(), ext, tenants) == []
    screenshot(customer, "customer-share")

    # One character changed: the same page for every bad token, and nothing of the tenant.
    token = url.rsplit("=", 1)[1]
    altered = url[: -len(token)] + token[:-1] + ("A" if token[-1] != "A" else "B")
    other = new_page()
    other.goto(altered)
    expect(other.get_by_role("heading", name="This link is not valid")).to_be_visible()
    expect(other.get_by_text(name, exact=True)).to_have_count(0)
    expect(other.get_by_test_id("stSidebar")).to_have_count(0)
    screenshot(other, "customer-share-not-valid")
