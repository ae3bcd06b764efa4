"""Navigation: sign-in when signed out, a share link's page alone, or the pages the role may open.

The menu is drawn here with st.page_link rather than by st.navigation itself, and the
built-in menu is switched off in .streamlit/config.toml (client.showSidebarNavigation).
Because the views live in a `pages/` folder, Streamlit runs a page file directly, without
app.py, on the first request after a server start; the built-in menu would then list every
file, to anyone. With it off, nobody sees a menu this module did not draw, and
`current_actor()` refuses a page the role may not open however the page was reached.
"""

from __future__ import annotations

import streamlit as st

from lockstep.access import PAGES, pages_for
from lockstep.config import ROOT
from lockstep.ui.health import stop_unless_database_ready
from lockstep.ui.programs import program_picker
from lockstep.ui.session import remember_asked_for, sidebar_identity, signed_in_actor

ICONS = {
    "overview": ":material/dashboard:",
    "plan": ":material/checklist:",
    "rollout": ":material/sync_lock:",
    "e2ee": ":material/enhanced_encryption:",
    "weekly": ":material/calendar_month:",
    "customers": ":material/handshake:",
    "audit": ":material/policy:",
    "users": ":material/group:",
}
LOGIN = str(ROOT / "pages" / "login.py")


def _page(key: str, title: str, *, default: bool = False, script: str | None = None, hidden: bool = False):
    return st.Page(
        script or str(ROOT / "pages" / f"{key}.py"),
        title=title,
        icon=ICONS.get(key),
        url_path=key,
        default=default,
        visibility="hidden" if hidden else "visible",
    )


def build_navigation():
    """An st.navigation over exactly what this visitor may open (the caller runs the page)."""
    stop_unless_database_ready()
    # A share link shows one tenant and nothing else, signed in or not: no sidebar, no menu.
    if "token" in st.query_params:
        # The default page is served at "/" under no name, so /share?token=... needs a named
        # page too, or Streamlit would show "page not found" before falling back to it.
        share = str(ROOT / "pages" / "share.py")
        return st.navigation(
            [_page("status", "Status", default=True, script=share), _page("share", "Status", hidden=True)],
            position="hidden",
        )
    actor = signed_in_actor()
    if actor is None:
        remember_asked_for()
        # Any page's address shows the sign-in form, so after signing in the visitor lands
        # where they were going (the session route sends the browser back to this address).
        aliases = [_page(key, "Sign in", script=LOGIN, hidden=True) for key in (*PAGES, "login")]
        return st.navigation([_page("signin", "Sign in", default=True, script=LOGIN), *aliases],
                             position="hidden")
    keys = pages_for(actor.role)
    pages = [_page(key, PAGES[key][0]) for key in keys]
    # The root address shows the role's first page. It is a hidden copy, so that the page
    # itself keeps its own address (/overview): a default page is served only at "/".
    first = str(ROOT / "pages" / f"{keys[0]}.py")
    home = _page("home", PAGES[keys[0]][0], default=True, hidden=True, script=first)
    # Registered but hidden: the rerun right after signing in lands on one of these.
    sign_in = [_page(key, "Sign in", script=LOGIN, hidden=True) for key in ("signin", "login")]
    nav = st.navigation([home, *pages, *sign_in], position="hidden")
    with st.sidebar:
        st.markdown("**:material/lock: Lockstep**")
        for page in pages:
            st.page_link(page, width="stretch")
        program_picker()
    sidebar_identity(actor)
    return nav
