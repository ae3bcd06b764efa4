"""The share page: one tenant's status for a live token, nothing else; one plain page for any bad token."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import text
from streamlit.testing.v1 import AppTest

from lockstep.clock import utcnow
from lockstep.config import ROOT, get_settings
from lockstep.db import write_session
from lockstep.permissions import SYSTEM, Actor
from lockstep.services.notes import add_note
from lockstep.services.share_links import create_share_link, revoke_share_link
from tests.app.conftest import ACTORS

SCRIPT_NAME = "<script>alert(1)</script> Security"
IMG_NOTE = '<img src=x onerror="alert(document.cookie)"> see [this](javascript:alert(1))'
NOT_VALID = "This link is not valid"


def sql(engine, query: str, **params):
    with engine.connect() as conn:
        return conn.execute(text(query), params).all()


def tenant_where(engine, condition: str) -> str:
    return sql(engine, f"SELECT external_id FROM tenants WHERE {condition} ORDER BY id LIMIT 1")[0][0]


def make_link(engine, external_id: str, actor: Actor = SYSTEM, **kw) -> tuple[int, str]:
    with write_session(engine) as s:
        link, token = create_share_link(session=s, actor=actor, tenant_external_id=external_id, **kw)
    return link.id, token


def open_share(token: str | None) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    if token is not None:
        at.query_params["token"] = token
    return at.run()


def assert_nothing_but_the_page(at: AppTest) -> None:
    """No sidebar, no menu, no other page registered."""
    assert len(at.sidebar.children) == 0
    assert not at.get("page_link")
    for page in ("overview", "customers", "audit", "login", "plan"):
        with pytest.raises(ValueError):
            at.switch_page(f"pages/{page}.py")


def test_a_live_link_shows_its_tenant_and_numbers_that_match_sql(demo_engine):
    ext = tenant_where(demo_engine, "tier = 'business'")
    _, token = make_link(demo_engine, ext)
    at = open_share(token)
    assert not at.exception, at.exception
    assert_nothing_but_the_page(at)
    name, tier_name, seats = sql(
        demo_engine,
        "SELECT t.name, tr.name, t.seats FROM tenants t JOIN tiers tr ON tr.code = t.tier "
        "WHERE t.external_id = :e", e=ext,
    )[0]
    assert at.title[0].value.replace("\\", "") == name
    assert f"Account {ext} · {tier_name}" in at.text[0].value and f"{seats:,} seats" in at.text[0].value
    # "Now" per track is the tenant's current stage, in track order, from current_state.
    expected = [
        r[0]
        for r in sql(
            demo_engine,
            "SELECT st.name FROM current_state cs JOIN tenants t ON t.id = cs.tenant_id "
            "JOIN tracks tk ON tk.code = cs.track_code "
            "JOIN track_stages st ON st.track_code = cs.track_code AND st.code = cs.stage_code "
            "WHERE t.external_id = :e ORDER BY tk.position, tk.code", e=ext,
        )
    ]
    assert expected and [m.value for m in at.metric if m.label == "Now"] == expected
    # Only this tenant: no other tenant's name or id appears anywhere on the page.
    others = sql(demo_engine, "SELECT name, external_id FROM tenants WHERE external_id <> :e LIMIT 50", e=ext)
    shown = " ".join(str(el.value) for el in [*at.text, *at.title, *at.markdown, *at.caption])
    assert not any(other_id in shown for _, other_id in others)


def test_signed_in_visitors_get_the_share_page_alone_too(demo_engine, sign_in_as):
    ext = tenant_where(demo_engine, "1 = 1")
    _, token = make_link(demo_engine, ext)
    sign_in_as("admin@lockstep.example")
    at = open_share(token)
    assert not at.exception
    assert_nothing_but_the_page(at)
    assert at.metric


def _altered(token: str) -> str:
    return token[:10] + ("x" if token[10] != "x" else "y") + token[11:]


@pytest.mark.parametrize("case", ["expired", "revoked", "altered", "garbage", "empty", "injection"])
def test_a_bad_token_shows_only_the_plain_not_valid_page(demo_engine, case):
    ext = tenant_where(demo_engine, "1 = 1")
    link_id, token = make_link(demo_engine, ext, days=1)
    if case == "expired":
        with demo_engine.begin() as conn:
            conn.execute(text("UPDATE share_links SET expires_at = :t WHERE id = :i"),
                         {"t": utcnow() - timedelta(seconds=1), "i": link_id})
    elif case == "revoked":
        with write_session(demo_engine) as s:
            revoke_share_link(session=s, actor=SYSTEM, link_id=link_id)
    else:
        token = {
            "altered": _altered(token),
            "garbage": "not-a-token",
            "empty": "",
            "injection": "' OR 1=1 --",
        }[case]
    at = open_share(token)
    assert not at.exception
    assert [t.value for t in at.title] == [NOT_VALID]
    assert [t.value for t in at.text] == [
        "It may have expired or been revoked. Ask your account manager for a new link."
    ]
    assert not at.metric and not at.dataframe and not at.markdown
    assert_nothing_but_the_page(at)


def test_revoking_takes_effect_on_the_next_load(demo_engine):
    ext = tenant_where(demo_engine, "1 = 1")
    link_id, token = make_link(demo_engine, ext)
    assert open_share(token).metric
    with write_session(demo_engine) as s:
        revoke_share_link(session=s, actor=SYSTEM, link_id=link_id)
    assert [t.value for t in open_share(token).title] == [NOT_VALID]


def test_hostile_names_and_notes_are_shown_as_text(demo_engine):
    ext, manager = sql(demo_engine, "SELECT external_id, account_manager FROM tenants WHERE name = :n",
                       n=SCRIPT_NAME)[0]
    with write_session(demo_engine) as s:
        add_note(session=s, actor=Actor(manager, "account_manager"), tenant_external_id=ext, body=IMG_NOTE)
    _, token = make_link(demo_engine, ext)
    at = open_share(token)
    assert not at.exception
    title = at.title[0]
    # Escaped for Markdown: every angle bracket and parenthesis carries a backslash.
    assert "<script>" not in title.value and title.value.replace("\\", "") == SCRIPT_NAME
    # The note is st.text: shown verbatim and whole, never markup.
    assert IMG_NOTE in [t.value for t in at.text]
    for el in at.markdown:
        assert not el.proto.allow_html


# --- the panel the Customers page embeds (lockstep.ui.share_widgets) ----------------------------

PANEL = """
from lockstep.ui.share_widgets import share_link_panel
share_link_panel(TENANT)
"""


def panel(ext: str, email: str, sign_in_as) -> AppTest:
    """The panel for tenant `ext`, in a browser signed in as `email` (tests/app/conftest.py)."""
    at = AppTest.from_string(PANEL.replace("TENANT", repr(ext)), default_timeout=60)
    sign_in_as(email)
    return at.run()


def test_the_panel_creates_shows_once_lists_and_revokes(demo_engine, monkeypatch, sign_in_as):
    monkeypatch.setenv("LOCKSTEP_PUBLIC_URL", "https://lockstep.example.com/")
    get_settings.cache_clear()
    ext, manager = sql(demo_engine, "SELECT external_id, account_manager FROM tenants "
                       "WHERE account_manager LIKE 'dana%' ORDER BY id LIMIT 1")[0]
    at = panel(ext, manager, sign_in_as)
    assert not at.exception, at.exception
    assert at.caption[-1].value == "No share links for this tenant yet."
    at.number_input(key=f"share_{ext}_days").set_value(3)
    at.button(key=f"share_{ext}_create").click().run()
    assert not at.exception, at.exception
    url = at.code[0].value
    assert url.startswith("https://lockstep.example.com/share?token=")
    token = url.split("token=")[1]
    # What the panel showed opens the tenant; the database holds only its hash.
    assert open_share(token).metric
    assert not sql(demo_engine, "SELECT 1 FROM share_links WHERE token_hash = :t", t=token)
    links = at.dataframe[0].value
    # In words: the state, who made it by name, and what the date means.
    assert list(links["State"]) == ["Active"] and list(links["Made by"]) == ["Dana Lee"]
    assert "Stops working" in links.columns
    # The demo database is SQLite.
    days = sql(demo_engine, "SELECT julianday(expires_at) - julianday(created_at) FROM share_links")[0][0]
    assert round(days, 6) == 3
    at.button(key=f"share_{ext}_revoke").click().run()
    assert not at.exception
    assert list(at.dataframe[0].value["State"]) == ["Revoked"]
    assert not at.code  # the one-time URL is gone with the link
    assert [t.value for t in open_share(token).title] == [NOT_VALID]


@pytest.mark.parametrize("role", ["security_lead", "executive"])
def test_the_panel_is_empty_for_roles_that_may_not_share(demo_engine, sign_in_as, role):
    ext = tenant_where(demo_engine, "1 = 1")
    at = panel(ext, ACTORS[role].email, sign_in_as)
    assert not at.exception
    assert not at.button and not at.dataframe and not at.markdown


def test_the_panel_refuses_another_managers_tenant(demo_engine, sign_in_as):
    ext, manager = sql(demo_engine, "SELECT external_id, account_manager FROM tenants "
                       "WHERE account_manager NOT LIKE 'dana%' ORDER BY id LIMIT 1")[0]
    at = panel(ext, "dana.lee@lockstep.example", sign_in_as)
    at.button(key=f"share_{ext}_create").click().run()
    assert [e.value for e in at.error] == [f"no tenant '{ext}' among the tenants you manage"]
    assert not sql(demo_engine, "SELECT 1 FROM share_links")
