"""Engine and sessions built from settings.

SQLite gets foreign keys, WAL and a busy timeout on every connection. Write sessions on
SQLite open with BEGIN IMMEDIATE so two writers queue instead of one failing half-way
when it upgrades a read lock.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from lockstep.config import get_settings
from lockstep.permissions import Actor
from lockstep.row_security import scope_session_to

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
