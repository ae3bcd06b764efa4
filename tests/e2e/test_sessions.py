"""Sessions in a real browser: cookie, reload and new tab, sign-out, idle timeout, a replayed session id.

The replay reproduces what Streamlit's frontend does when its websocket reconnects: it
opens the new websocket with the subprotocols ["streamlit", <xsrf token>, <session id>],
and the server resumes the session with that id. One browser context signs in, has its
websocket closed so it reconnects, and the id it sends is recorded; a second context (no
cookies of the first) then opens the app with that id as its third subprotocol.
"""

from __future__ import annotations

import json
from datetime import timedelta

from playwright.sync_api import expect
from sqlalchemy import text

from lockstep.clock import utcnow
from tests.e2e.conftest import EMAILS, PAGE_MS, sign_in, wait_idle

# Wraps window.WebSocket to record the subprotocols of every socket the frontend opens,
# and keeps the sockets so the test can close one (Streamlit then reconnects).
RECORD_SOCKETS = """(() => {
  const Native = window.WebSocket;
  window.__protocols = []; window.__sockets = [];
  function Recording(url, protocols) {
    const ws = new Native(url, protocols);
    window.__protocols.push(Array.from(protocols || []));
    window.__sockets.push(ws);
    return ws;
  }
  Recording.prototype = Native.prototype;
  for (const k of ['CONNECTING', 'OPEN', 'CLOSING', 'CLOSED']) Recording[k] = Native[k];
  window.WebSocket = Recording;
})();"""

# Opens every websocket of the page as a reconnect to the given Streamlit session id.
REPLAY_SESSION = """((stolen) => {
  const Native = window.WebSocket;
  function Replaying(url, protocols) {
    const p = Array.from(protocols || []);
    while (p.length < 2) p.push('');
    p[2] = stolen;
    return new Native(url, p);
  }
  Replaying.prototype = Native.prototype;
  for (const k of ['CONNECTING', 'OPEN', 'CLOSING', 'CLOSED']) Replaying[k] = Native[k];
  window.WebSocket = Replaying;
})(%s);"""


def signed_in_sidebar(page, role: str):
    return page.get_by_test_id("stSidebar").get_by_text(f"Signed in as {EMAILS[role]}")


def expect_sign_in_form(page) -> None:
    expect(page.get_by_role("textbox", name="E-mail")).to_be_visible()
    expect(page.get_by_test_id("stSidebar")).to_have_count(0)


def sign_out(page) -> None:
    wait_idle(page)
    # A DOM click: the sidebar's transitions can keep Playwright's "stable" check waiting.
    page.get_by_role("button", name="Sign out").dispatch_event("click")
    expect_sign_in_form(page)


def test_sign_in_survives_reload_and_a_new_tab_until_sign_out(new_page, app_url):
    page = new_page()
    sign_in(page, app_url, "executive")
    [cookie] = [c for c in page.context.cookies() if c["name"] == "lockstep_session"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax" and cookie["path"] == "/"
    assert cookie["expires"] > 0  # kept across browser restarts, until the session's lifetime
    # HttpOnly: no script on the page can read it.
    assert "lockstep_session" not in page.evaluate("document.cookie")
    page.reload()
    expect(signed_in_sidebar(page, "executive")).to_be_visible()
    tab = page.context.new_page()
    tab.goto(f"{app_url}/weekly")
    expect(signed_in_sidebar(tab, "executive")).to_be_visible()
    sign_out(tab)
    assert not [c for c in page.context.cookies() if c["name"] == "lockstep_session"]
    tab.reload()
    expect_sign_in_form(tab)
    page.reload()
    expect_sign_in_form(page)


def test_a_session_past_its_idle_timeout_is_refused(new_page, app_url, e2e_engine):
    page = new_page()
    sign_in(page, app_url, "security_lead")
    # Time is moved in the database row, not waited for: last seen 8 h 1 min ago.
    with e2e_engine.begin() as conn:
        conn.execute(
            text("UPDATE user_sessions SET last_seen_at = :t WHERE ended_at IS NULL AND user_id = "
                 "(SELECT id FROM users WHERE email = :e)"),
            {"t": utcnow() - timedelta(hours=8, minutes=1), "e": EMAILS["security_lead"]},
        )
    page.reload()
    expect_sign_in_form(page)
    with e2e_engine.connect() as conn:
        reasons = conn.execute(text(
            "SELECT ended_reason FROM user_sessions s JOIN users u ON u.id = s.user_id WHERE u.email = :e"
        ), {"e": EMAILS["security_lead"]}).scalars().all()
    assert "idle" in reasons


def _stolen_session_id(page) -> str:
    """Make the page's websocket reconnect and return the Streamlit session id it presents."""
    wait_idle(page)
    page.evaluate("window.__sockets[window.__sockets.length - 1].close()")
    page.wait_for_function("window.__protocols.length >= 2 && window.__protocols.at(-1).length >= 3",
                           timeout=PAGE_MS)
    return page.evaluate("window.__protocols.at(-1)[2]")


def _replay(new_page, app_url, session_id: str):
    """A second browser (its own, empty cookie jar) that opens the app as session `session_id`."""
    intruder = new_page()
    received: list[bytes] = []
    def keep(payload) -> None:
        received.append(payload if isinstance(payload, bytes) else payload.encode())

    intruder.on("websocket", lambda ws: ws.on("framereceived", keep))
    intruder.add_init_script(REPLAY_SESSION % json.dumps(session_id))
    intruder.goto(f"{app_url}/")
    return intruder, received


def test_a_replayed_session_id_gets_the_sign_in_page_and_none_of_the_users_data(new_page, app_url):
    owner = new_page()
    owner.add_init_script(RECORD_SOCKETS)
    sign_in(owner, app_url, "account_manager")
    expect(owner.get_by_role("heading", name="Overview")).to_be_visible()
    session_id = _stolen_session_id(owner)
    expect(signed_in_sidebar(owner, "account_manager")).to_be_visible()
    sign_out(owner)
    # After sign-out, the old id from another browser: the sign-in page, nothing of the manager's.
    intruder, received = _replay(new_page, app_url, session_id)
    expect_sign_in_form(intruder)
    wait_idle(intruder)
    # The server resumed the owner's session: its new-session message names the replayed id.
    assert session_id.encode() in b"".join(received), "the replay did not resume the owner's session"
    email = EMAILS["account_manager"].encode()
    assert not any(email in frame for frame in received)
    assert not any(b"Signed in as" in frame for frame in received)
    assert not any(b"Overview" in frame for frame in received)


def test_a_replayed_session_id_is_refused_while_its_owner_is_still_signed_in(new_page, app_url):
    owner = new_page()
    owner.add_init_script(RECORD_SOCKETS)
    sign_in(owner, app_url, "account_manager")
    session_id = _stolen_session_id(owner)
    intruder, received = _replay(new_page, app_url, session_id)
    expect_sign_in_form(intruder)
    wait_idle(intruder)
    assert session_id.encode() in b"".join(received), "the replay did not resume the owner's session"
    assert not any(EMAILS["account_manager"].encode() in frame for frame in received)
