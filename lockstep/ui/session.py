"""Who is using the app: sign-in, sign-out, and the one Actor every page reads.

Signing in (password, single sign-on, or the development shortcut) opens a server-side
session (lockstep/services/sessions.py) and sends the browser to the START route
(lockstep/ui/web.py), which sets the HttpOnly session cookie and brings the browser back.
From then on every script run, on every page, starts with `signed_in_actor()`:

1. The token comes from this connection's cookies (`st.context.cookies`, read from the
   websocket handshake), never from session state.
2. A Streamlit session that signed in remembers the SHA-256 of the token it signed in
   with (`st.session_state[BOUND]`). If the connection now presents another token, or
   none, this is not the browser that signed in (a Streamlit session id replayed from
   elsewhere, or a cleared cookie): all session state is dropped before anything is drawn.
3. The token is checked against the database on every run: ended (sign-out, password or
   role change, deactivation), idle too long or past its lifetime, the user inactive:
   signed out. The role is read fresh each time.

A reload or a second tab sends the same cookie, so it stays signed in.
"""

from __future__ import annotations

import hmac
import logging
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

import streamlit as st
from streamlit.errors import StreamlitSecretNotFoundError
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.runtime.pages_manager import PagesManager
from streamlit.runtime.scriptrunner import get_script_run_ctx

from lockstep.access import PAGES, may_open, pages_for
from lockstep.config import ROOT, get_settings
from lockstep.db import write_session
from lockstep.permissions import Actor
from lockstep.services import auth, sessions
from lockstep.ui.data import engine, run_query, settings
from lockstep.ui.web import (
    SIGNED_OUT_COOKIE,
    end_url,
    home_path,
    safe_next,
    session_cookie_name,
    start_url,
)

log = logging.getLogger(__name__)

# Our views live in pages/, so until app.py has called st.navigation once, Streamlit treats
# the folder as an old-style page list and runs a requested page file without app.py (no
# menu, no sign-out). Every page imports this module: from its next rerun on, app.py decides.
# This is the flag st.navigation itself clears; renaming pages/ would make it unnecessary.
PagesManager.uses_pages_directory = False

ACTOR = "actor"
# SHA-256 of the cookie token this Streamlit session signed in with.
BOUND = "session_token_hash"
# Set once the browser has been sent to the START route; the sign-in page then says so.
SIGNING_IN = "signing_in"
# Set after an explicit sign-out so a development auto sign-in does not undo it at once.
SIGNED_OUT = "signed_out"
REFUSED = "auto_sign_in_refused"
# The address a signed-out visitor first opened: the page to land on after signing in.
ASKED_FOR = "asked_for_path"
ROLE_LABELS = {
    "admin": "Admin",
    "security_lead": "Security lead",
    "account_manager": "Account manager",
    "executive": "Executive",
}


PAGES_DIR = ROOT / "pages"
LOGIN_PAGE = "pages/login.py"


def _running_page() -> str | None:
    """The key of the pages/*.py file on the call stack (the page being run), if any."""
    frame = sys._getframe(1)
    while frame is not None:
        path = Path(frame.f_code.co_filename)
        if path.parent == PAGES_DIR:
            return path.stem
        frame = frame.f_back
    return None


def current_actor() -> Actor:
    """The signed-in user, allowed on the running page; otherwise this page goes no further."""
    # A page file can run without app.py (the first request after a server start): check the
    # settings here too, so a bad LOCKSTEP_* variable shows its message instead of a traceback.
    settings()
    actor = signed_in_actor()
    if actor is None:
        remember_asked_for()
        st.switch_page(LOGIN_PAGE)
    page = _running_page()
    # Navigation offers only allowed pages; this also holds when a page file is run directly.
    if page in PAGES and not may_open(actor.role, page):
        st.error("This page is not available to you.")
        st.stop()
    return actor


def browser_cookies() -> Mapping[str, str]:
    """The cookies this connection's browser sent (Streamlit reads them from the websocket handshake)."""
    return st.context.cookies


def session_token() -> str | None:
    """The session token in the cookies this connection's browser sent, if any."""
    return browser_cookies().get(session_cookie_name()) or None


def client_address() -> str:
    """The client's address as the server sees it, for the per-address sign-in throttle.

    `st.context.ip_address` is the websocket peer, which uvicorn takes from X-Forwarded-For
    only when the peer is a trusted proxy (FORWARDED_ALLOW_IPS, default 127.0.0.1); loopback
    (and AppTest) reads as None, counted together as "local".
    """
    address = st.context.ip_address
    return address if isinstance(address, str) and address else "local"


def send_browser_to(url: str) -> None:
    """Make the browser load `url` (a route of ours), as st.login and st.logout do."""
    ctx = get_script_run_ctx()
    if ctx is None:
        return
    # Streamlit's auth_redirect message: the frontend sets window.location to the URL.
    msg = ForwardMsg()
    msg.auth_redirect.url = url
    ctx.enqueue(msg)


def _next_path(actor: Actor) -> str:
    """Where the browser goes after sign-in: the page it asked for, if this role may open it; else home."""
    # The sign-in form answers at every page's address, so that address is the page asked for.
    # It is read on the visitor's first run (remember_asked_for): by the time the form is sent,
    # the browser's address shows the sign-in page's own.
    url = st.session_state.get(ASKED_FOR) or st.context.url
    path = safe_next(urlsplit(url).path if isinstance(url, str) else None)
    key = path.rstrip("/").rsplit("/", 1)[-1]
    if key and not (key in PAGES and may_open(actor.role, key)):
        return home_path()
    return path


def remember_asked_for() -> None:
    """Note the address a signed-out visitor opened, once per Streamlit session."""
    if ASKED_FOR not in st.session_state and isinstance(st.context.url, str):
        st.session_state[ASKED_FOR] = st.context.url


def _forget(*, keep: tuple[str, ...] = ()) -> None:
    kept = {k: st.session_state[k] for k in keep if k in st.session_state}
    st.session_state.clear()
    st.session_state.update(kept)


def _open_browser_session(session, actor: Actor, method: str) -> str:
    """Open the server-side session in the caller's transaction; the START address for the browser."""
    code = sessions.start_session(session=session, actor=actor, method=method, address=client_address())
    return start_url(code, _next_path(actor))
def home_page(actor: Actor) -> str:
    """The first page the actor's role may open, as a path for st.switch_page."""
    return f"pages/{pages_for(actor.role)[0]}.py"


def sso_configured() -> bool:
    """True when .streamlit/secrets.toml has an [auth] section (OIDC single sign-on)."""
    try:
        return "auth" in st.secrets
    except StreamlitSecretNotFoundError:
        return False


def demo_role() -> str | None:
    """LOCKSTEP_DEMO_ROLE, honoured only when LOCKSTEP_ENV=development (local screenshots)."""
    if get_settings().environment != "development":
        return None
    role = os.environ.get("LOCKSTEP_DEMO_ROLE", "").strip()
    return role or None


def _trusted(email: str, method: str) -> None:
    try:
        with write_session(engine()) as session:
            actor = auth.sign_in_trusted(session=session, email=email, method=method)
            url = _open_browser_session(session, actor, method)
    except auth.SignInFailed as exc:
        st.session_state[REFUSED] = str(exc)
        return
    st.session_state[SIGNING_IN] = True
    send_browser_to(url)


def _automatic_sign_in() -> None:
    """Single sign-on (identity cookie) or the development role; at most one try per Streamlit session."""
    if st.session_state.get(SIGNED_OUT) or REFUSED in st.session_state or SIGNING_IN in st.session_state:
        return
    if sso_configured() and st.user.is_logged_in:
        if st.user.get("email_verified") is False:
            st.session_state[REFUSED] = "Your identity provider has not verified your e-mail address."
            return
        _trusted(str(st.user.get("email") or ""), "sso")
        return
    if (role := demo_role()) and not browser_cookies().get(SIGNED_OUT_COOKIE):
        from lockstep.demo import DEMO_USERS

        email = next((e for e, r, _ in DEMO_USERS if r == role), None)
        if email is None:
            st.session_state[REFUSED] = f"LOCKSTEP_DEMO_ROLE={role!r} is not a role"
            return
        _trusted(email, "demo-role")


def signed_in_actor() -> Actor | None:
    """Who is signed in on this run: the cookie's server-side session, checked now, bound to this session."""
    token = session_token()
    presented = sessions.token_hash(token) if token else None
    bound = st.session_state.get(BOUND)
    if bound is not None and (presented is None or not hmac.compare_digest(bound, presented)):
        # Not the browser that signed in (a replayed Streamlit session id, or the cookie is
        # gone): nothing this session held may reach it.
        log.warning("session state bound to another browser session; starting over")
        _forget()
    elif bound is None and ACTOR in st.session_state:
        _forget()
    if token is None:
        _automatic_sign_in()
        return None
    check = run_query(sessions.check_session, token=token)
    if check.actor is None:
        if check.problem in ("idle", "expired"):
            with write_session(engine()) as session:
                sessions.end_expired_session(
                    session=session, session_id=check.session_id, reason=check.problem
                )
        if BOUND in st.session_state:
            _forget(keep=(SIGNED_OUT,))
        _automatic_sign_in()
        return None
    if check.stale:
        with write_session(engine()) as session:
            sessions.touch_session(session=session, session_id=check.session_id)
    st.session_state[BOUND] = presented
    st.session_state[ACTOR] = check.actor
    return check.actor


def sign_in(email: str, password: str) -> str | None:
    """Check the password and open the session (the browser is sent for its cookie); the error, else None."""
    try:
        with write_session(engine()) as session:
            actor = auth.authenticate(
                session=session, email=email, password=password, address=client_address()
            )
            url = _open_browser_session(session, actor, "password")
    except auth.SignInFailed as exc:
        return str(exc)
    # A fresh session state: nothing typed before sign-in carries over into the signed-in session.
    st.session_state.clear()
    st.session_state[SIGNING_IN] = True
    send_browser_to(url)
    return None


def sign_out() -> None:
    """End every server-side session of this user, forget this session's state, drop the cookie."""
    actor = st.session_state.get(ACTOR)
    if actor is not None:
        with write_session(engine()) as session:
            auth.sign_out(session=session, actor=actor)
    st.session_state.clear()
    st.session_state[SIGNED_OUT] = True
    send_browser_to(end_url(single_sign_on=sso_configured() and bool(st.user.is_logged_in)))


def sidebar_identity(actor: Actor) -> None:
    """Who is signed in, and the sign-out button, at the foot of the sidebar."""
    with st.sidebar:
        st.divider()
        # st.text, not markdown: an e-mail address is user text.
        st.text(f"Signed in as {actor.email}")
        st.caption(ROLE_LABELS.get(actor.role, actor.role))
        # A callback runs before the next script run, whichever page that run shows.
        st.button("Sign out", key="sign_out", icon=":material/logout:", on_click=sign_out)
