"""Run the chosen page and log what escapes it as one structured line, then let Streamlit show it."""

from __future__ import annotations

import logging

import streamlit as st

from lockstep.logs import configure_logging, log_event


def run_page(page) -> None:
    """Run `page` (an st.navigation result); an unhandled error is logged, then re-raised."""
    configure_logging()
    try:
        page.run()
    except Exception as exc:
        # A driver error's own message, not SQLAlchemy's, which appends the statement and its values.
        cause = getattr(exc, "orig", None) or exc
        first_line = (str(cause).strip().splitlines() or [""])[0]
        actor = st.session_state.get("actor")
        log_event(
            "error",
            level=logging.ERROR,
            page=getattr(page, "url_path", None) or getattr(page, "title", ""),
            user=getattr(actor, "email", None),
            error=type(exc).__name__,
            message=first_line,
        )
        raise
