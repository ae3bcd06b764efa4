"""Engine and cached reads for the pages.

Cached reads are keyed by the database URL, the function and its arguments; pass the
actor (a frozen dataclass, hashable) or plain values, never a session object.
`clear_after_write()` empties them after any write.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

import streamlit as st

from lockstep.config import Settings, SettingsError, get_settings
from lockstep.db import make_engine, read_session


def settings() -> Settings:
    """The settings; when a LOCKSTEP_* variable is bad, the page shows why and goes no further."""
    try:
        return get_settings()
    except SettingsError as exc:
        st.error(f"Lockstep cannot start: {exc}. Fix the setting and restart the server.")
        st.stop()


@st.cache_resource(show_spinner=False)
def _engine(url: str):
    return make_engine(url)


def engine():
    """The app's engine for the configured database (one pool per server process)."""
    return _engine(settings().database_url)


def run_query(fn: Callable[..., Any], /, **kwargs) -> Any:
    """Call a lockstep query function with a fresh read session (uncached), row-scoped to its actor."""
    # The one place the pages' reads open a session: an `actor` argument also scopes the
    # database's row-level security (PostgreSQL), so a query that forgets its filter cannot
    # show an account manager another manager's tenants.
    with read_session(engine(), actor=kwargs.get("actor")) as session:
        return fn(session=session, **kwargs)


def deferred_query(fn: Callable[..., Any], /, **kwargs) -> Callable[[], Any]:
    """A zero-argument callable that runs the query later, uncached (e.g. a download's data on click).

    The engine is looked up now: Streamlit calls a download's data callable outside the
    script run, where session and cache lookups are not available.
    """
    bound = engine()

    def run() -> Any:
        with read_session(bound, actor=kwargs.get("actor")) as session:
            return fn(session=session, **kwargs)

    return run


def _run_by_path(url: str, fn_path: str, kwargs_items: tuple) -> Any:
    module, _, name = fn_path.rpartition(".")
    fn = getattr(__import__(module, fromlist=[name]), name)
    return run_query(fn, **dict(kwargs_items))


@cache
def _cached():
    # Built on first use, not at import: the TTL comes from the settings, which may be bad,
    # and an import must not fail before `settings()` can show why.
    return st.cache_data(ttl=settings().cache_ttl_seconds, show_spinner=False)(_run_by_path)


def cached_query(fn: Callable[..., Any], /, **kwargs) -> Any:
    """Call a lockstep query function through st.cache_data (TTL from settings)."""
    return _cached()(settings().database_url, f"{fn.__module__}.{fn.__qualname__}",
                     tuple(sorted(kwargs.items())))


def clear_after_write() -> None:
    """Drop every cached read so the next render shows the write."""
    _cached().clear()
