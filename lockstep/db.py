"""Engine and sessions built from settings.

SQLite gets foreign keys, WAL and a busy timeout on every connection. Write sessions on
SQLite open with BEGIN IMMEDIATE so two writers queue instead of one failing half-way
when it upgrades a read lock.

`write_transaction` is the one place that retries a write the database aborted because of
other writers (a deadlock or serialization failure on PostgreSQL, a lock SQLite waited for
beyond its busy timeout): the whole transaction runs again, a few times, with a short
random pause so that two retrying writers do not meet again at once.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import TypeVar

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from lockstep.config import get_settings
from lockstep.errors import DatabaseBusy
from lockstep.permissions import Actor
from lockstep.row_security import scope_session_to

T = TypeVar("T")
log = logging.getLogger(__name__)

# A transaction that lost a deadlock is retried up to this many times in all.
WRITE_ATTEMPTS = 6
# First pause before a retry, in seconds; it doubles each time and is jittered by ±50%.
RETRY_PAUSE = 0.02
# PostgreSQL: serialization_failure, deadlock_detected.
RETRYABLE_SQLSTATES = frozenset({"40001", "40P01"})
SQLITE_BUSY = ("database is locked", "database is busy", "database table is locked")

_IMMEDIATE = "lockstep_immediate"


def make_engine(url: str, **kwargs) -> Engine:
    """Create an engine for `url` with Lockstep's connection settings."""
    if url.startswith("sqlite"):
        engine = create_engine(url, **kwargs)
        _configure_sqlite(engine)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(url, **kwargs)


def _configure_sqlite(engine: Engine) -> None:
    # pysqlite's own transaction handling defers BEGIN and cannot do BEGIN IMMEDIATE;
    # take it over (the SQLAlchemy-documented recipe) so we control both.
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        if engine.url.database not in (None, "", ":memory:"):
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        immediate = conn.get_execution_options().get(_IMMEDIATE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def is_sqlite(session_or_engine) -> bool:
    """True when the session or engine talks to SQLite."""
    bind = session_or_engine.get_bind() if isinstance(session_or_engine, Session) else session_or_engine
    return bind.dialect.name == "sqlite"


@lru_cache(maxsize=4)
def get_engine(url: str | None = None) -> Engine:
    """The process-wide engine for `url` (default: the configured database)."""
    return make_engine(url or get_settings().database_url)


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """A sessionmaker bound to `engine` whose objects stay readable after commit."""
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def read_session(engine: Engine | None = None, *, actor: Actor | None = None) -> Iterator[Session]:
    """A session for reads, row-scoped to `actor` on PostgreSQL when given; rolled back, never committed."""
    with Session(engine or get_engine()) as session:
        if actor is not None:
            scope_session_to(session, actor)
        try:
            yield session
        finally:
            session.rollback()


@contextmanager
def write_session(engine: Engine | None = None, *, actor: Actor | None = None) -> Iterator[Session]:
    """A session that commits on success and rolls back on any error; row-scoped like read_session."""
    engine = engine or get_engine()
    with Session(engine, expire_on_commit=False) as session:
        if actor is not None:
            scope_session_to(session, actor)
        if engine.dialect.name == "sqlite":
            session.connection(execution_options={_IMMEDIATE: True})
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def driver_error(exc: BaseException) -> BaseException | None:
    """The database driver's own error behind `exc`, or None when `exc` is not a database error.

    SQLAlchemy wraps the driver's errors; bulk_insert's raw cursor (COPY, executemany) does not.
    """
    if isinstance(exc, DBAPIError):
        return exc.orig
    if type(exc).__module__.split(".")[0] in ("sqlite3", "psycopg"):
        return exc
    return None


def is_retryable(exc: BaseException) -> bool:
    """True when the database aborted a transaction only because of concurrent writers."""
    orig = driver_error(exc)
    if orig is None:
        return False
    if getattr(orig, "sqlstate", None) in RETRYABLE_SQLSTATES:
        return True
    message = str(orig).lower()
    return type(orig).__module__.startswith("sqlite3") and any(m in message for m in SQLITE_BUSY)


def write_transaction(
    work: Callable[[Session], T],
    *,
    engine: Engine | None = None,
    actor: Actor | None = None,
    attempts: int = WRITE_ATTEMPTS,
) -> T:
    """Run `work(session)` in one write transaction, again when other writers made the database abort it.

    `work` must do nothing but database work in the session (it may run more than once);
    `actor` scopes the session's rows as write_session does.
    After `attempts` aborted tries, DatabaseBusy says so; nothing was written.
    """
    engine = engine or get_engine()
    for attempt in range(1, attempts + 1):
        try:
            with write_session(engine, actor=actor) as session:
                return work(session)
        except Exception as exc:
            if not is_retryable(exc):
                raise
            cause = str(driver_error(exc)).strip().splitlines()[0]
            if attempt == attempts:
                raise DatabaseBusy(
                    f"the database aborted this write {attempts} times because of other writers "
                    f"({cause}); nothing was written, try again"
                ) from exc
            pause = RETRY_PAUSE * 2 ** (attempt - 1) * random.uniform(0.5, 1.5)
            log.info("write aborted by concurrent writers (%s); retry %d in %.3f s", cause, attempt, pause)
            time.sleep(pause)
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises
