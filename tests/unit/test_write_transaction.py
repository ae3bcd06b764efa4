"""write_transaction: a write the database aborted for other writers runs again, a bounded number of times."""

from __future__ import annotations

import sqlite3

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from lockstep import db
from lockstep.cli import EXIT_DATABASE, EXIT_DENIED, EXIT_INVALID, database_failure
from lockstep.db import is_retryable, make_engine, write_transaction
from lockstep.errors import DatabaseBusy


class _PgError(Exception):
    """Stands in for a psycopg error: what the code reads is its sqlstate."""

    def __init__(self, message: str, sqlstate: str):
        super().__init__(message)
        self.sqlstate = sqlstate


def _wrapped(orig: Exception) -> OperationalError:
    return OperationalError("UPDATE stage_counts ...", {}, orig)


@pytest.fixture
def engine(tmp_path, monkeypatch):
    monkeypatch.setattr(db, "RETRY_PAUSE", 0.0)
    eng = make_engine(f"sqlite:///{tmp_path / 'w.db'}")
    with eng.begin() as conn:
        conn.execute(text("CREATE TABLE t (n INTEGER)"))
    yield eng
    eng.dispose()


def _rows(engine) -> list[int]:
    with engine.connect() as conn:
        return [r[0] for r in conn.execute(text("SELECT n FROM t ORDER BY n"))]


def test_a_deadlocked_try_is_rolled_back_and_the_transaction_runs_again(engine):
    tries = []

    def work(session):
        tries.append(1)
        session.execute(text("INSERT INTO t VALUES (:n)"), {"n": len(tries)})
        if len(tries) < 3:
            raise _wrapped(_PgError("deadlock detected", "40P01"))
        return "done"

    assert write_transaction(work, engine=engine) == "done"
    assert len(tries) == 3
    assert _rows(engine) == [3]  # the aborted tries left nothing behind


def test_after_the_last_try_the_caller_gets_a_clear_domain_error(engine):
    def work(session):
        session.execute(text("INSERT INTO t VALUES (1)"))
        raise _wrapped(_PgError("could not serialize access", "40001"))

    with pytest.raises(DatabaseBusy, match="aborted this write 4 times because of other writers"):
        write_transaction(work, engine=engine, attempts=4)
    assert _rows(engine) == []


def test_other_errors_are_not_retried(engine):
    tries = []

    def work(session):
        tries.append(1)
        raise _wrapped(_PgError("relation does not exist", "42P01"))

    with pytest.raises(OperationalError):
        write_transaction(work, engine=engine)
    assert len(tries) == 1


def test_what_counts_as_retryable():
    assert is_retryable(_wrapped(_PgError("deadlock detected", "40P01")))
    assert is_retryable(_wrapped(sqlite3.OperationalError("database is locked")))
    assert is_retryable(sqlite3.OperationalError("database is locked"))  # raw, from bulk_insert
    assert not is_retryable(_wrapped(sqlite3.OperationalError("attempt to write a readonly database")))
    assert not is_retryable(ValueError("deadlock detected"))


@pytest.mark.parametrize(
    ("orig", "code", "words"),
    [
        (_PgError("cannot execute INSERT in a read-only transaction", "25006"), EXIT_DENIED, "read-only"),
        (sqlite3.OperationalError("attempt to write a readonly database"), EXIT_DENIED, "read-only"),
        (_PgError("connection failed: Connection refused", "08006"), EXIT_DATABASE, "cannot reach"),
        (_PgError("deadlock detected", "40P01"), EXIT_DATABASE, "busy with other writers"),
        (
            sqlite3.IntegrityError("UNIQUE constraint failed: tenants.external_id"),
            EXIT_INVALID,
            "breaks a rule",
        ),
    ],
)
def test_driver_errors_map_to_exit_codes_by_cause(orig, code, words):
    got, message = database_failure(orig)
    assert got == code and words in message
    assert "db upgrade" not in message
