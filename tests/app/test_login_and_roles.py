"""Sign-in through the app, and the navigation each role gets (exactly lockstep/access.py).

The demo database holds the demo users (password: lockstep.demo.DEFAULT_DEMO_PASSWORD).
Signing in sends the browser to the session route for its cookie; these tests follow that
hop by calling the route (tests/app/routes.py) and presenting the cookie it sets.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from streamlit.testing.v1 import AppTest

from lockstep.access import PAGES, may_open, pages_for
from lockstep.config import ROOT, get_settings
from lockstep.db import write_session
from lockstep.demo import DEFAULT_DEMO_PASSWORD, DEMO_USERS
from lockstep.models import ROLES
from lockstep.permissions import SYSTEM, Actor
from lockstep.services.auth import SIGN_IN_FAILED
from lockstep.services.users import deactivate_user, set_role
from lockstep.ui.web import start_path
from tests.app.routes import follow_sign_in, follow_sign_out, redirects

EMAIL = {role: next(e for e, r, _ in DEMO_USERS if r == role) for role in ROLES}


@pytest.fixture
def app(demo_db_url, monkeypatch, browser_cookie):
    """A fresh AppTest of app.py over the demo database, production settings, a browser without cookies."""
    monkeypatch.setenv("LOCKSTEP_ENV", "production")
    monkeypatch.delenv("LOCKSTEP_DEMO_ROLE", raising=False)
    get_settings.cache_clear()
    yield AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    get_settings.cache_clear()


def audit_rows(engine, action: str) -> list[tuple]:
    with engine.connect() as conn:
        return conn.execute(
            text("SELECT actor, entity_id FROM audit_log WHERE action = :a ORDER BY id"), {"a": action}
        ).all()


def sign_in(at: AppTest, email: str, password: str) -> AppTest:
    at.text_input(key="login_email").input(email)
    at.text_input(key="login_password").input(password)
    return at.button(key="FormSubmitter:login-Sign in").click().run()


def registered(at: AppTest, page: str) -> bool:
    """True when the navigation of the last run registered pages/<page>.py."""
    try:
        at.switch_page(f"pages/{page}.py")
    except ValueError:
        return False
    return True


def sidebar_links(at: AppTest) -> list[str]:
    return [el.proto.label for el in at.sidebar.get("page_link")]


def test_signed_out_only_the_sign_in_form_is_offered(app):
    at = app.run()
    assert not at.exception
    assert "actor" not in at.session_state
    assert [t.label for t in at.text_input] == ["E-mail", "Password"]
    password = at.text_input(key="login_password").proto
    assert password.type == password.PASSWORD
    assert not any(registered(at, key) for key in PAGES)
    assert not registered(at, "share")
    assert len(at.sidebar.children) == 0


def user_actor(engine, role: str) -> Actor:
    """The demo user of `role` as a signed-in session holds it (with its user id)."""
    with engine.connect() as conn:
        user_id = conn.execute(text("SELECT id FROM users WHERE email = :e"), {"e": EMAIL[role]}).scalar()
    return Actor(EMAIL[role], role, user_id)


@pytest.fixture
def signed_in_app(sign_in_as):
    """signed_in_app(role) -> app.py run once in a browser signed in as that role's demo user."""

    def _run(role: str) -> AppTest:
        sign_in_as(EMAIL[role])
        return AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()

    return _run


@pytest.mark.parametrize("role", ROLES)
def test_each_role_signs_in_with_the_form(app, demo_engine, browser_cookie, monkeypatch, role):
    sent = redirects(monkeypatch)
    at = sign_in(app.run(), EMAIL[role].upper(), DEFAULT_DEMO_PASSWORD)
    assert not at.exception, at.exception
    assert not at.error
    assert audit_rows(demo_engine, "auth.sign_in") == [(EMAIL[role], EMAIL[role])]
    # Not signed in yet: the browser is sent for its cookie, and told so.
    assert "actor" not in at.session_state
    assert [i.value for i in at.info] == ["Signing you in…"]
    [url] = sent
    assert url.startswith(start_path() + "?code=")
    # The route sets the cookie; with it, this browser (a reload, a new tab) is signed in.
    browser_cookie(follow_sign_in(url))
    for _ in range(2):
        again = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
        assert again.session_state["actor"] == user_actor(demo_engine, role)
        assert f"Signed in as {EMAIL[role]}" in [t.value for t in again.sidebar.text]


@pytest.mark.parametrize("role", ROLES)
def test_each_role_gets_exactly_its_pages(signed_in_app, role):
    at = signed_in_app(role)
    assert not at.exception, at.exception
    assert sidebar_links(at) == [PAGES[k][0] for k in pages_for(role)]
    for key in PAGES:
        assert registered(at, key) == may_open(role, key), key
    assert not registered(at, "share")
    assert f"Signed in as {EMAIL[role]}" in [t.value for t in at.sidebar.text]
    assert [b.label for b in at.sidebar.button] == ["Sign out"]


def test_only_admin_has_the_audit_page():
    assert [r for r in ROLES if may_open(r, "audit")] == ["admin"]


def test_a_wrong_password_and_an_unknown_email_show_the_same_message(app, demo_engine, monkeypatch):
    sent = redirects(monkeypatch)
    at = sign_in(app.run(), EMAIL["admin"], "not the password")
    assert [e.value for e in at.error] == [SIGN_IN_FAILED]
    assert "actor" not in at.session_state
    at = sign_in(at, "nobody@lockstep.example", DEFAULT_DEMO_PASSWORD)
    assert [e.value for e in at.error] == [SIGN_IN_FAILED]
    assert [r[1] for r in audit_rows(demo_engine, "auth.sign_in_failed")] == [
        EMAIL["admin"], "nobody@lockstep.example",
    ]
    assert sent == []


def test_sign_out_ends_the_server_session_clears_the_state_and_drops_the_cookie(
    signed_in_app, demo_engine, monkeypatch
):
    sent = redirects(monkeypatch)
    at = signed_in_app("security_lead")
    at.session_state["leftover"] = "something from the session"
    at.sidebar.button(key="sign_out").click().run()
    assert not at.exception
    assert "actor" not in at.session_state and "leftover" not in at.session_state
    assert [t.label for t in at.text_input] == ["E-mail", "Password"]
    assert audit_rows(demo_engine, "auth.sign_out") == [(EMAIL["security_lead"], EMAIL["security_lead"])]
    assert sent == ["/_lockstep/session/end"]
    # The same cookie, presented again (a reload before the browser dropped it), signs nobody in.
    again = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    assert "actor" not in again.session_state
    assert [t.label for t in again.text_input] == ["E-mail", "Password"]


def test_a_streamlit_session_presented_without_its_cookie_is_signed_out_before_drawing(
    signed_in_app, browser_cookie
):
    # Another browser resuming this Streamlit session (its id replayed on the websocket)
    # comes without the cookie: the state it would inherit is dropped before anything is drawn.
    at = signed_in_app("account_manager")
    assert at.session_state["actor"].role == "account_manager"
    at.session_state["leftover"] = "typed by the account manager"
    browser_cookie(None)
    at.run()
    assert "actor" not in at.session_state and "leftover" not in at.session_state
    assert [t.label for t in at.text_input] == ["E-mail", "Password"]
    assert len(at.sidebar.children) == 0
    assert not at.get("plotly_chart") and not at.metric and not at.dataframe


def test_a_streamlit_session_presented_with_another_users_cookie_starts_over(signed_in_app, sign_in_as):
    at = signed_in_app("account_manager")
    at.session_state["leftover"] = "typed by the account manager"
    sign_in_as(EMAIL["executive"])
    at.run()
    assert at.session_state["actor"].email == EMAIL["executive"]
    assert "leftover" not in at.session_state


def test_a_session_past_its_idle_timeout_is_refused(signed_in_app, demo_engine):
    at = signed_in_app("executive")
    assert at.session_state["actor"].role == "executive"
    with write_session(demo_engine) as s:
        past_idle = datetime.now(UTC).replace(tzinfo=None) - timedelta(hours=8, minutes=1)
        s.execute(text("UPDATE user_sessions SET last_seen_at = :t"), {"t": past_idle})
    at.run()
    assert "actor" not in at.session_state
    assert [t.label for t in at.text_input] == ["E-mail", "Password"]
    with demo_engine.connect() as conn:
        assert conn.execute(text("SELECT ended_reason FROM user_sessions")).scalar() == "idle"


@pytest.mark.parametrize(
    "role, page",
    [(r, p) for r in ROLES for p in PAGES if not may_open(r, p)],
)
def test_a_page_run_directly_refuses_a_role_it_is_not_for(sign_in_as, role, page):
    # Streamlit can run a page file without app.py (see lockstep/ui/nav.py): the page itself refuses.
    at = AppTest.from_file(str(ROOT / "pages" / f"{page}.py"), default_timeout=60)
    sign_in_as(EMAIL[role])
    at.run()
    assert not at.exception
    assert [e.value for e in at.error] == ["This page is not available to you."]
    assert len(at.dataframe) == 0 and len(at.get("plotly_chart")) == 0 and len(at.metric) == 0


@pytest.mark.parametrize("change", ["role", "deactivate"])
def test_a_role_change_or_deactivation_signs_the_browser_out_at_its_next_run(
    signed_in_app, demo_engine, change
):
    at = signed_in_app("security_lead")
    assert "Rollout" in sidebar_links(at)
    with write_session(demo_engine) as s:
        if change == "role":
            set_role(session=s, actor=SYSTEM, email=EMAIL["security_lead"], role="account_manager")
        else:
            deactivate_user(session=s, actor=SYSTEM, email=EMAIL["security_lead"])
    at.run()
    assert "actor" not in at.session_state
    assert [t.label for t in at.text_input] == ["E-mail", "Password"]


@pytest.mark.parametrize("env, signed_in", [("development", True), ("production", False), ("test", False)])
def test_the_demo_role_shortcut_works_only_in_development(
    demo_db_url, monkeypatch, browser_cookie, env, signed_in
):
    monkeypatch.setenv("LOCKSTEP_ENV", env)
    monkeypatch.setenv("LOCKSTEP_DEMO_ROLE", "executive")
    get_settings.cache_clear()
    sent = redirects(monkeypatch)
    try:
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
        assert not at.exception
        assert len(sent) == (1 if signed_in else 0)
        if signed_in:
            browser_cookie(follow_sign_in(sent[0]))
            at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
            assert at.session_state["actor"].email == EMAIL["executive"]
    finally:
        get_settings.cache_clear()


def test_after_sign_out_the_demo_role_does_not_sign_in_again(demo_db_url, monkeypatch, browser_cookie):
    monkeypatch.setenv("LOCKSTEP_ENV", "development")
    monkeypatch.setenv("LOCKSTEP_DEMO_ROLE", "admin")
    get_settings.cache_clear()
    sent = redirects(monkeypatch)
    try:
        AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
        browser_cookie(follow_sign_in(sent.pop()))
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
        assert at.session_state["actor"].role == "admin"
        at.sidebar.button(key="sign_out").click().run()
        # The browser follows the sign-out route: cookie dropped, "signed out" remembered.
        browser_cookie(None, **follow_sign_out(sent.pop()))
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    finally:
        get_settings.cache_clear()
    assert "actor" not in at.session_state
    assert sent == []


SSO_SECRETS = {
    "auth": {
        "redirect_uri": "http://127.0.0.1:8501/oauth2callback",
        "cookie_secret": "test-only",
        "client_id": "lockstep",
        "client_secret": "test-only",
        "server_metadata_url": "https://idp.example/.well-known/openid-configuration",
    }
}


def test_sso_maps_a_known_email_to_its_user_and_role(app, demo_engine, monkeypatch, browser_cookie):
    sent = redirects(monkeypatch)
    app.secrets = SSO_SECRETS
    app.user = {"is_logged_in": True, "email": EMAIL["account_manager"], "email_verified": True}
    at = app.run()
    assert not at.exception, at.exception
    [url] = sent
    browser_cookie(follow_sign_in(url))
    at.run()
    actor = at.session_state["actor"]
    assert (actor.email, actor.role) == (EMAIL["account_manager"], "account_manager")
    assert sidebar_links(at) == [PAGES[k][0] for k in pages_for("account_manager")]
    with demo_engine.connect() as conn:
        assert conn.execute(text("SELECT method FROM user_sessions")).scalar() == "sso"


def test_sso_refuses_an_unknown_email_with_a_plain_message(app, demo_engine, monkeypatch):
    sent = redirects(monkeypatch)
    app.secrets = SSO_SECRETS
    app.user = {"is_logged_in": True, "email": "stranger@elsewhere.example"}
    at = app.run()
    assert "actor" not in at.session_state
    assert any("has no active Lockstep account" in e.value for e in at.error)
    assert at.button(key="login_sso").label == "Sign in with single sign-on"
    # Refused once per session: a rerun does not write another failure.
    at.run()
    assert len(audit_rows(demo_engine, "auth.sign_in_failed")) == 1
    assert sent == []


def test_without_sso_configured_there_is_no_sso_button(app):
    at = app.run()
    assert not [b for b in at.button if b.key == "login_sso"]


def test_sso_sign_out_ends_the_session_and_goes_on_to_streamlits_logout(app, demo_engine, monkeypatch,
                                                                        browser_cookie):
    sent = redirects(monkeypatch)
    app.secrets = SSO_SECRETS
    app.user = {"is_logged_in": True, "email": EMAIL["executive"], "email_verified": True}
    at = app.run()
    browser_cookie(follow_sign_in(sent.pop()))
    at.run()
    assert at.session_state["actor"].role == "executive"
    at.sidebar.button(key="sign_out").click().run()
    assert not at.exception
    assert "actor" not in at.session_state
    # Our route drops the session cookie, then Streamlit's /auth/logout drops the identity cookie.
    assert sent == ["/_lockstep/session/end?sso=1"]
    assert audit_rows(demo_engine, "auth.sign_out") == [(EMAIL["executive"], EMAIL["executive"])]
    with demo_engine.connect() as conn:
        assert conn.execute(text("SELECT ended_reason FROM user_sessions")).scalar() == "signed out"
