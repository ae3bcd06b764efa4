"""A bad LOCKSTEP_* variable: every page says which and why instead of crashing (issue 18, item 5)."""

from __future__ import annotations

import pytest

from lockstep.config import get_settings


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("LOCKSTEP_SHARE_LINK_DAYS", "365", "LOCKSTEP_SHARE_LINK_DAYS='365' is out of range"),
        ("LOCKSTEP_SHARE_LINK_DAYS", "abc", "LOCKSTEP_SHARE_LINK_DAYS='abc' is not a whole number"),
        ("LOCKSTEP_CACHE_TTL", "0", "LOCKSTEP_CACHE_TTL='0' is out of range"),
    ],
)
@pytest.mark.parametrize(("page", "role"), [("overview", "executive"), ("customers", "account_manager")])
def test_pages_show_the_bad_setting(open_page, monkeypatch, name, value, says, page, role):
    monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    at = open_page(page, role)
    assert not at.exception
    errors = [e.value for e in at.error]
    assert any(says in e and "restart the server" in e for e in errors), errors
