"""A bad LOCKSTEP_* variable: every page says which and why instead of crashing (issue 18, item 5)."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from lockstep.config import ROOT, get_settings
from tests.app.conftest import ACTORS


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("LOCKSTEP_SHARE_LINK_DAYS", "365", "LOCKSTEP_SHARE_LINK_DAYS='365' is out of range"),
        ("LOCKSTEP_SHARE_LINK_DAYS", "abc", "LOCKSTEP_SHARE_LINK_DAYS='abc' is not a whole number"),
        ("LOCKSTEP_CACHE_TTL", "0", "LOCKSTEP_CACHE_TTL='0' is out of range"),
    ],
)
@pytest.mark.parametrize(("page", "role"), [("overview", "executive"), ("customers", "account_manager")])
def test_pages_show_the_bad_setting(demo_db_url, sign_in_as, monkeypatch, name, value, says, page, role):
    # Signed in while the settings were good; the server then starts with a bad variable.
    sign_in_as(ACTORS[role].email)
    monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.run()
    if page != "overview":
        at.switch_page(f"pages/{page}.py")
        at.run()
    assert not at.exception
    errors = [e.value for e in at.error]
    assert any(says in e and "restart the server" in e for e in errors), errors


def test_the_sign_in_page_shows_the_bad_setting(demo_db_url, monkeypatch):
    monkeypatch.setenv("LOCKSTEP_SHARE_LINK_DAYS", "0")
    get_settings.cache_clear()
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    assert not at.exception
    assert any("LOCKSTEP_SHARE_LINK_DAYS='0' is out of range" in e.value for e in at.error)
    assert not at.text_input, "no sign-in form under a bad setting"
