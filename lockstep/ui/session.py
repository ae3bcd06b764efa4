"""Who is using the app: sign-in, sign-out, and the one Actor every page reads.

The signed-in Actor lives in `st.session_state["actor"]`; pages only call
`current_actor()`. Streamlit keeps session state on the server, per browser tab, so a
reload (or a new tab) starts signed out unless single sign-on's cookie says otherwise.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import streamlit as st
from streamlit.errors import StreamlitSecretNotFoundError
from streamlit.runtime.pages_manager import PagesManager

from lockstep.access import PAGES, may_open, pages_for
from lockstep.config import ROOT, get_settings
from lockstep.db import write_session
from lockstep.permissions import Actor
from lockstep.services import auth
from lockstep.ui.data import engine, run_query

# Our views live in pages/, so until app.py has called st.navigation once, Streamlit treats
# the folder as an old-style page list and runs a requested page file without app.py (no
# menu, no sign-out). Every page imports this module: from its next rerun on, app.py decides.
# This is the flag st.navigation itself clears; renaming pages/ would make it unnecessary.
PagesManager.uses_pages_directory = False

ACTOR = "actor"
# Set after an explicit sign-out so a development auto sign-in does not undo it at once.
SIGNED_OUT = "signed_out"
REFUSED = "auto_sign_in_refused"
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
    actor = st.session_state.get(ACTOR)
    if actor is None:
        st.switch_page(LOGIN_PAGE)
    page = _running_page()
    # Navigation offers only allowed pages; this also holds when a page file is run directly.
    if page in PAGES and not may_open(actor.role, page):
        st.error("This page is not available to you.")
        st.stop()
    return actor


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


def _trusted(email: str, method: str) -> Actor | None:
    try:
        with write_session(engine()) as session:
            return auth.sign_in_trusted(session=session, email=email, method=method)
    except auth.SignInFailed as exc:
        st.session_state[REFUSED] = str(exc)
        return None


def _automatic_sign_in() -> Actor | None:
    """Single sign-on (identity cookie) or the development role; at most one try per session."""
    if st.session_state.get(SIGNED_OUT) or REFUSED in st.session_state:
        return None
    if sso_configured() and st.user.is_logged_in:
        if st.user.get("email_verified") is False:
            st.session_state[REFUSED] = "Your identity provider has not verified your e-mail address."
            return None
        return _trusted(str(st.user.get("email") or ""), "sso")
    if role := demo_role():
        from lockstep.demo import DEMO_USERS

        email = next((e for e, r, _ in DEMO_USERS if r == role), None)
        if email is None:
            st.session_state[REFUSED] = f"LOCKSTEP_DEMO_ROLE={role!r} is not a role"
            return None
        return _trusted(email, "demo-role")
    return None


def signed_in_actor() -> Actor | None:
    """Who is signed in now, re-checked with the database (role changes and deactivation apply at once)."""
    actor = st.session_state.get(ACTOR)
    if actor is None:
        actor = _automatic_sign_in()
        if actor is not None:
            st.session_state[ACTOR] = actor
        return actor
    fresh = run_query(auth.still_valid, actor=actor)
    if fresh is None:
        st.session_state.clear()
        st.session_state[SIGNED_OUT] = True
        return None
    if fresh != actor:
        st.session_state[ACTOR] = fresh
    return fresh


def sign_in(email: str, password: str) -> str | None:
    """Check the password and start the session; the error message on failure, else None."""
    try:
        with write_session(engine()) as session:
            actor = auth.authenticate(session=session, email=email, password=password)
    except auth.SignInFailed as exc:
        return str(exc)
    # A fresh session state: nothing typed before sign-in carries over into the signed-in session.
    st.session_state.clear()
    st.session_state[ACTOR] = actor
    return None


def sign_out() -> None:
    """Audit the sign-out and forget everything this session held."""
    actor = st.session_state.get(ACTOR)
    if actor is not None:
        with write_session(engine()) as session:
            auth.sign_out(session=session, actor=actor)
    st.session_state.clear()
    st.session_state[SIGNED_OUT] = True
    if sso_configured() and st.user.is_logged_in:
        st.logout()


def sidebar_identity(actor: Actor) -> None:
    """Who is signed in, and the sign-out button, at the foot of the sidebar."""
    with st.sidebar:
        st.divider()
        # st.text, not markdown: an e-mail address is user text.
        st.text(f"Signed in as {actor.email}")
        st.caption(ROLE_LABELS.get(actor.role, actor.role))
        # A callback runs before the next script run, whichever page that run shows.
        st.button("Sign out", key="sign_out", icon=":material/logout:", on_click=sign_out)
