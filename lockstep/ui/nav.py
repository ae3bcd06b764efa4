"""Navigation: the pages the current role may open, and nothing else."""

from __future__ import annotations

import streamlit as st

from lockstep.access import PAGES, pages_for
from lockstep.config import ROOT
from lockstep.ui.session import role_picker

ICONS = {
    "overview": ":material/dashboard:",
    "plan": ":material/checklist:",
    "rollout": ":material/sync_lock:",
    "e2ee": ":material/enhanced_encryption:",
    "weekly": ":material/calendar_month:",
    "customers": ":material/handshake:",
}


def build_navigation():
    """An st.navigation over the pages the acting role may open."""
    actor = role_picker()
    pages = [
        st.Page(
            str(ROOT / "pages" / f"{key}.py"),
            title=PAGES[key][0],
            icon=ICONS.get(key),
            url_path=key,
            default=(i == 0),
        )
        for i, key in enumerate(pages_for(actor.role))
    ]
    return st.navigation(pages)
