"""Small portable SQL helpers (SQLite and PostgreSQL share the ON CONFLICT syntax)."""

from __future__ import annotations

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session


def insert_for(session: Session, table: Table):
    """An INSERT for `table` that supports on_conflict_* on the session's backend."""
    dialect = session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)


def add_to_count(session: Session, table: Table, key: dict, column: str, delta: int) -> None:
    """counts[key].column += delta, creating the row at `delta` when it is missing."""
    if delta == 0:
        return
    stmt = insert_for(session, table).values(**key, **{column: delta})
    stmt = stmt.on_conflict_do_update(
        index_elements=list(key), set_={column: getattr(table.c, column) + delta}
    )
    session.execute(stmt)
