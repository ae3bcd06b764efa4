"""Small portable SQL helpers: counters (SQLite and PostgreSQL share ON CONFLICT) and bulk inserts."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

from sqlalchemy import Table, insert, text
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


def add_to_counts(session: Session, table: Table, deltas: Iterable[tuple[dict, int]], column: str) -> None:
    """counts[key].column += delta for each (key, delta), touching the rows in sorted key order.

    Two transactions that lock the same counter rows in opposite orders deadlock on
    PostgreSQL; sorted by the table's key columns, every writer locks them in one order.
    """
    names = [c.name for c in table.primary_key.columns]
    for key, delta in sorted(deltas, key=lambda kd: tuple(kd[0][n] for n in names)):
        add_to_count(session, table, key, column, delta)


# Rows per executemany / COPY call: bounds the memory a generator of rows is turned into.
WRITE_CHUNK = 50_000


def batched(rows: Iterable[tuple], size: int) -> Iterator[list[tuple]]:
    """Lists of up to `size` rows from `rows`."""
    it = iter(rows)
    while batch := list(itertools.islice(it, size)):
        yield batch


def bulk_insert(
    session: Session,
    table: Table,
    columns: list[str],
    rows: Iterable[tuple],
    progress: Callable[[int], None] | None = None,
) -> int:
    """Insert tuples at driver speed: executemany on SQLite, COPY on PostgreSQL; return the count.

    The statement is compiled from a Core insert() so column names come from the model;
    the rows skip SQLAlchemy's per-row parameter processing, which measured at a third
    of the driver's speed here (see benchmarks/README.md). Datetimes must be passed as
    text from csvio.format_timestamps, which is how SQLAlchemy stores them on SQLite.
    No ON CONFLICT: a duplicate key fails the statement (and the caller's transaction).
    """
    conn = session.connection()
    driver = conn.connection.driver_connection
    n = 0
    if conn.dialect.name == "postgresql":
        cols = ", ".join(table.c[c].name for c in columns)
        with driver.cursor() as cur:
            for batch in batched(rows, WRITE_CHUNK):
                with cur.copy(f"COPY {table.name} ({cols}) FROM STDIN") as copy:
                    for row in batch:
                        copy.write_row(row)
                n += len(batch)
                if progress:
                    progress(len(batch))
        return n
    sql = str(insert(table).compile(dialect=conn.dialect, column_keys=columns))
    cur = driver.cursor()
    try:
        for batch in batched(rows, WRITE_CHUNK):
            cur.executemany(sql, batch)
            n += len(batch)
            if progress:
                progress(len(batch))
    finally:
        cur.close()
    return n


@contextmanager
def walk_in_index_order(session: Session) -> Iterator[None]:
    """PostgreSQL: plan the statements inside without a sort, so an ORDER BY … LIMIT walks its index.

    For an account manager a query runs under row-level security, and PostgreSQL cannot
    estimate the policy's filter: it takes it to keep ~1.5% of the manager's tenants, so
    "the first 50 by name" looks cheaper as all of them fetched and sorted (105,000 rows at a
    million tenants, about a second) than as a walk of the (account_manager, name) index
    that stops after 50 (a millisecond). Use it for one statement whose ORDER BY an index
    serves; the setting is back as it was afterwards (and ends with the transaction anyway).
    SQLite: nothing to do.
    """
    if session.get_bind().dialect.name != "postgresql":
        yield
        return
    was = session.scalar(text("SELECT current_setting('enable_sort')"))
    session.execute(text("SELECT set_config('enable_sort', 'off', true)"))
    try:
        yield
    finally:
        session.execute(text("SELECT set_config('enable_sort', :was, true)"), {"was": was})
