"""Whether the app's database can be used at all: reachable, and at the schema this version needs.

Checked before navigation reads anything, so a database that is down or not upgraded shows
one plain page-level message instead of a Streamlit error on whatever page was opened. The
driver's own message stays in the server log (the browser never sees error details).
"""

from __future__ import annotations

import logging

import streamlit as st

from lockstep.config import get_settings
from lockstep.migrate import schema_status
from lockstep.ui.data import engine

log = logging.getLogger(__name__)

# A database found ready is trusted this long before it is checked again (one query).
READY_TTL = 30

UNREACHABLE = (
    "**The database cannot be reached right now.** Nothing on this page can be shown or saved "
    "until it is back; reload the page then. (Administrators: the server log has the details.)"
)


class _NotReady(Exception):
    """The database is not usable; the message says why (never cached: the next run checks again)."""


@st.cache_data(ttl=READY_TTL, show_spinner=False)
def _ready(url: str) -> bool:
    try:
        status = schema_status(engine())
    except Exception as exc:  # noqa: BLE001 - any failure to connect means "unreachable" to a visitor
        log.warning("database unreachable: %s", exc)
        raise _NotReady(UNREACHABLE) from exc
    if not status.at_head:
        why = status.describe()
        raise _NotReady(
            f"**The database needs `db upgrade`.** {why[0].upper()}{why[1:]}. "
            "Until then the app cannot show or save anything."
        )
    return True


def stop_unless_database_ready() -> None:
    """Show a page-level message and stop the run when the database is down or its schema behind."""
    try:
        _ready(get_settings().database_url)
    except _NotReady as exc:
        st.error(str(exc), icon=":material/database:")
        st.stop()
