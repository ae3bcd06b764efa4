"""The program picker: which program the pages show, remembered for the browser session.

Shown in the sidebar only when more than one program is synced. Its first value is the
default program (`lockstep.queries.program.default_program`: the one running today, else
the latest); the choice stays for the session, across pages.
"""

from __future__ import annotations

import streamlit as st

from lockstep.queries.program import default_program, programs
from lockstep.ui.data import cached_query

CHOSEN = "program"
_WIDGET = "program_picker"


def _remember() -> None:
    st.session_state[CHOSEN] = st.session_state[_WIDGET]


def current_program() -> str | None:
    """The program the pages show: the session's choice while it exists, else the default one."""
    known = list(cached_query(programs)["id"])
    chosen = st.session_state.get(CHOSEN)
    return chosen if chosen in known else cached_query(default_program)


def program_picker() -> None:
    """A sidebar select box of the programs (only when there are several)."""
    listed = cached_query(programs)
    if len(listed) < 2:
        return
    ids = list(listed["id"])
    names = dict(zip(ids, listed["name"], strict=True))
    current = current_program()
    st.session_state[CHOSEN] = current
    st.sidebar.selectbox(
        "Program",
        ids,
        index=ids.index(current),
        format_func=names.get,
        key=_WIDGET,
        on_change=_remember,
        help="Plan items, tracks and weeks of this program; the default is the one running today.",
    )
