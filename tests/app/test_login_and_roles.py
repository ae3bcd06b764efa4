"""Sign-in through the app, and the navigation each role gets (exactly lockstep/access.py).

The demo database holds the demo users (password: lockstep.demo.DEFAULT_DEMO_PASSWORD).
"""

from __future__ import annotations

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

EMAIL = {role: next(e for e, r, _ in DEMO_USERS if r == role) for role in ROLES}


@pytest.fixture
def app(demo_db_url, monkeypatch):
    """A fresh AppTest of app.py over the demo database, production settings."""
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


def signed_in_app(engine, role: str, actor: Actor | None = None) -> AppTest:
    """app.py run once for a session that is already signed in."""
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.session_state["actor"] = actor or user_actor(engine, role)
    return at.run()


@pytest.mark.parametrize("role", ROLES)
def test_each_role_signs_in_with_the_form(app, demo_engine, role):
    at = sign_in(app.run(), EMAIL[role].upper(), DEFAULT_DEMO_PASSWORD)
    assert not at.exception, at.exception
    assert at.session_state["actor"] == user_actor(demo_engine, role)
    assert not at.error
    assert audit_rows(demo_engine, "auth.sign_in") == [(EMAIL[role], EMAIL[role])]


@pytest.mark.parametrize("role", ROLES)
def test_each_role_gets_exactly_its_pages(demo_engine, role):
    at = signed_in_app(demo_engine, role)
    assert not at.exception, at.exception
    assert sidebar_links(at) == [PAGES[k][0] for k in pages_for(role)]
    for key in PAGES:
        assert registered(at, key) == may_open(role, key), key
    assert not registered(at, "share")
    assert f"Signed in as {EMAIL[role]}" in [t.value for t in at.sidebar.text]
    assert [b.label for b in at.sidebar.button] == ["Sign out"]


def test_only_admin_has_the_audit_page():
    assert [r for r in ROLES if may_open(r, "audit")] == ["admin"]


def test_a_wrong_password_and_an_unknown_email_show_the_same_message(app, demo_engine):
    at = sign_in(app.run(), EMAIL["admin"], "not the password")
    assert [e.value for e in at.error] == [SIGN_IN_FAILED]
    assert "actor" not in at.session_state
    at = sign_in(at, "nobody@lockstep.example", DEFAULT_DEMO_PASSWORD)
    assert [e.value for e in at.error] == [SIGN_IN_FAILED]
    assert [r[1] for r in audit_rows(demo_engine, "auth.sign_in_failed")] == [
        EMAIL["admin"], "nobody@lockstep.example",
    ]


def test_sign_out_clears_the_session_and_is_audited(demo_engine):
    at = signed_in_app(demo_engine, "security_lead")
    at.session_state["leftover"] = "something from the session"
    at.sidebar.button(key="sign_out").click().run()
    assert not at.exception
    assert "actor" not in at.session_state and "leftover" not in at.session_state
    assert [t.label for t in at.text_input] == ["E-mail", "Password"]
    assert audit_rows(demo_engine, "auth.sign_out") == [(EMAIL["security_lead"], EMAIL["security_lead"])]


@pytest.mark.parametrize(
    "role, page",
    [(r, p) for r in ROLES for p in PAGES if not may_open(r, p)],
)
def test_a_page_run_directly_refuses_a_role_it_is_not_for(demo_db_url, role, page):
    # Streamlit can run a page file without app.py (see lockstep/ui/nav.py): the page itself refuses.
    at = AppTest.from_file(str(ROOT / "pages" / f"{page}.py"), default_timeout=60)
    at.session_state["actor"] = Actor(EMAIL[role], role)
    at.run()
    assert not at.exception
    assert [e.value for e in at.error] == ["This page is not available to you."]
    assert len(at.dataframe) == 0 and len(at.get("plotly_chart")) == 0 and len(at.metric) == 0


def test_a_role_change_applies_to_a_signed_in_session_at_once(demo_engine):
    actor = user_actor(demo_engine, "security_lead")
    assert "Rollout" in sidebar_links(signed_in_app(demo_engine, "security_lead", actor))
    with write_session(demo_engine) as s:
        set_role(session=s, actor=SYSTEM, email=EMAIL["security_lead"], role="account_manager")
    # The same session's next run of app.py (AppTest keeps no session between instances).
    at = signed_in_app(demo_engine, "security_lead", actor)
    assert at.session_state["actor"].role == "account_manager"
    assert sidebar_links(at) == [PAGES[k][0] for k in pages_for("account_manager")]


def test_a_deactivated_user_is_signed_out_on_the_next_run(demo_engine):
    actor = user_actor(demo_engine, "security_lead")
    with write_session(demo_engine) as s:
        deactivate_user(session=s, actor=SYSTEM, email=EMAIL["security_lead"])
    at = signed_in_app(demo_engine, "security_lead", actor)
    assert "actor" not in at.session_state
    assert [t.label for t in at.text_input] == ["E-mail", "Password"]


@pytest.mark.parametrize("env, signed_in", [("development", True), ("production", False), ("test", False)])
def test_the_demo_role_shortcut_works_only_in_development(demo_db_url, monkeypatch, env, signed_in):
    monkeypatch.setenv("LOCKSTEP_ENV", env)
    monkeypatch.setenv("LOCKSTEP_DEMO_ROLE", "executive")
    get_settings.cache_clear()
    try:
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    finally:
        get_settings.cache_clear()
    assert not at.exception
    assert ("actor" in at.session_state) == signed_in
    if signed_in:
        assert at.session_state["actor"].email == EMAIL["executive"]


def test_after_sign_out_the_demo_role_does_not_sign_in_again(demo_db_url, monkeypatch):
    monkeypatch.setenv("LOCKSTEP_ENV", "development")
    monkeypatch.setenv("LOCKSTEP_DEMO_ROLE", "admin")
    get_settings.cache_clear()
    try:
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
        assert at.session_state["actor"].role == "admin"
        at.sidebar.button(key="sign_out").click().run()
        at.run()
    finally:
        get_settings.cache_clear()
    assert "actor" not in at.session_state


SSO_SECRETS = {
    "auth": {
        "redirect_uri": "http://127.0.0.1:8501/oauth2callback",
        "cookie_secret": "test-only",
        "client_id": "lockstep",
        "client_secret": "test-only",
        "server_metadata_url": "https://idp.example/.well-known/openid-configuration",
    }
}


def test_sso_maps_a_known_email_to_its_user_and_role(app, demo_engine):
    app.secrets = SSO_SECRETS
    app.user = {"is_logged_in": True, "email": EMAIL["account_manager"], "email_verified": True}
    at = app.run()
    assert not at.exception, at.exception
    actor = at.session_state["actor"]
    assert (actor.email, actor.role) == (EMAIL["account_manager"], "account_manager")
    assert sidebar_links(at) == [PAGES[k][0] for k in pages_for("account_manager")]


def test_sso_refuses_an_unknown_email_with_a_plain_message(app, demo_engine):
    app.secrets = SSO_SECRETS
    app.user = {"is_logged_in": True, "email": "stranger@elsewhere.example"}
    at = app.run()
    assert "actor" not in at.session_state
    assert any("has no active Lockstep account" in e.value for e in at.error)
    assert at.button(key="login_sso").label == "Sign in with single sign-on"
    # Refused once per session: a rerun does not write another failure.
    at.run()
    assert len(audit_rows(demo_engine, "auth.sign_in_failed")) == 1


def test_without_sso_configured_there_is_no_sso_button(app):
    at = app.run()
    assert not [b for b in at.button if b.key == "login_sso"]


def test_sso_sign_out_also_ends_the_identity_cookie_session(app, demo_engine):
    app.secrets = SSO_SECRETS
    app.user = {"is_logged_in": True, "email": EMAIL["executive"], "email_verified": True}
    at = app.run()
    assert at.session_state["actor"].role == "executive"
    at.sidebar.button(key="sign_out").click().run()
    assert not at.exception
    assert "actor" not in at.session_state
    assert not at.user.get("is_logged_in")
    assert audit_rows(demo_engine, "auth.sign_out") == [(EMAIL["executive"], EMAIL["executive"])]
