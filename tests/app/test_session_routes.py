"""The session-cookie routes (lockstep/ui/web.py) as a browser meets them."""

from __future__ import annotations

import pytest

from lockstep.config import get_settings
from lockstep.ui.web import end_session_cookie, end_url, start_session_cookie, start_url
from tests.app.conftest import ACTORS
from tests.app.routes import get, set_cookies


@pytest.fixture
def code(demo_engine):
    """A fresh hand-off code for the admin, as signing in makes one."""
    from lockstep.db import write_session
    from lockstep.services import sessions
    from lockstep.services.auth import actor_for
    from lockstep.services.users import get_user

    with write_session(demo_engine) as s:
        admin = actor_for(get_user(session=s, email=ACTORS["admin"].email))
        return sessions.start_session(session=s, actor=admin, method="password")


def test_a_code_sets_the_cookie_once_and_the_browser_goes_on_to_its_page(code):
    first = get(start_session_cookie, start_url(code, "/audit"))
    assert (first.status_code, first.headers["location"]) == (303, "/audit")
    assert first.headers["cache-control"] == "no-store" and first.headers["referrer-policy"] == "no-referrer"
    jar = set_cookies(first)["lockstep_session"]["lockstep_session"]
    assert jar["httponly"] and jar["samesite"].lower() == "lax" and not jar["secure"]
    assert int(jar["max-age"]) > 6 * 24 * 3600
    again = get(start_session_cookie, start_url(code, "/audit"))
    assert again.status_code == 303 and "lockstep_session" not in set_cookies(again)


def test_an_unknown_code_or_a_foreign_next_sets_nothing_and_stays_home(demo_db_url):
    response = get(start_session_cookie, start_url("made-up", "//evil.example/"))
    assert (response.status_code, response.headers["location"]) == (303, "/")
    assert set_cookies(response) == {}


def test_under_https_the_cookie_is_secure_and_host_only_and_plain_http_is_refused(code, monkeypatch):
    monkeypatch.setenv("LOCKSTEP_PUBLIC_URL", "https://lockstep.example.com")
    get_settings.cache_clear()
    try:
        refused = get(start_session_cookie, start_url(code, "/"), scheme="http")
        assert refused.status_code == 400 and b"LOCKSTEP_PUBLIC_URL is https" in refused.body
        response = get(start_session_cookie, start_url(code, "/"), scheme="https")
        jar = set_cookies(response)["__Host-lockstep_session"]["__Host-lockstep_session"]
        assert jar["secure"] and jar["httponly"] and jar["path"] == "/"
    finally:
        get_settings.cache_clear()


def test_the_end_route_drops_the_cookie_and_remembers_the_sign_out(demo_db_url):
    response = get(end_session_cookie, end_url(single_sign_on=False))
    assert (response.status_code, response.headers["location"]) == (303, "/")
    cookies = set_cookies(response)
    assert cookies["lockstep_session"]["lockstep_session"]["max-age"] == "0"
    assert cookies["lockstep_signed_out"]["lockstep_signed_out"].value == "1"
    sso = get(end_session_cookie, end_url(single_sign_on=True))
    assert sso.headers["location"] == "/auth/logout"
