"""Who is using the app. Until sign-in lands a sidebar role picker stands in for it;
the pages only ever call `current_actor()`, so login replaces the picker without them."""

from __future__ import annotations

import streamlit as st

from lockstep.models import ROLES
from lockstep.permissions import Actor

DEMO_ACTORS = {
    "admin": Actor("admin@lockstep.example", "admin"),
    "security_lead": Actor("lead@lockstep.example", "security_lead"),
    "account_manager": Actor("dana.lee@lockstep.example", "account_manager"),
    "executive": Actor("exec@lockstep.example", "executive"),
}


def current_actor() -> Actor:
    """The acting user for this browser session."""
    actor = st.session_state.get("actor")
    if actor is None:
        actor = DEMO_ACTORS["security_lead"]
        st.session_state["actor"] = actor
    return actor


def role_picker() -> Actor:
    """Sidebar picker that sets the acting role (stand-in for sign-in)."""
    actor = current_actor()
    role = st.sidebar.selectbox("Acting as", ROLES, index=ROLES.index(actor.role), key="role_picker")
    if role != actor.role:
        st.session_state["actor"] = DEMO_ACTORS[role]
        st.rerun()
    return st.session_state["actor"]
