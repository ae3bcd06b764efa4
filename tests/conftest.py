"""Shared fixtures: a freshly migrated database on SQLite and on PostgreSQL.

`engine` is parametrised over both backends, so one test body runs on each. Each test
gets its own database: a copy of a migrated SQLite file, or a PostgreSQL database
cloned from a migrated template. In CI (CI=true) an unreachable PostgreSQL fails the
test instead of skipping it.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from lockstep.db import make_engine
from lockstep.migrate import upgrade

PG_ADMIN_URL = os.environ.get("LOCKSTEP_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() == "true"
# Tests choose their audit key themselves: never the data/audit.key a `make run` here made.
os.environ.setdefault("LOCKSTEP_AUDIT_KEY_FILE", "")


def _pg_url(dbname: str) -> str:
    base, _, _ = PG_ADMIN_URL.rpartition("/")
    return f"{base}/{dbname}"


def _pg_admin():
    return create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> Path:
    """A migrated SQLite file that tests copy."""
    path = tmp_path_factory.mktemp("template") / "template.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def pg_template():
    """Name of a migrated PostgreSQL template database, or a skip/fail when unreachable."""
    name = f"lockstep_tpl_{os.getpid()}"
    try:
        admin = _pg_admin()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # noqa: BLE001 - any connection failure means "no PostgreSQL"
        if IN_CI:
            pytest.fail(f"PostgreSQL at {PG_ADMIN_URL} is required in CI: {exc}")
        pytest.skip(f"PostgreSQL not reachable at {PG_ADMIN_URL}: {exc}")
    upgrade(_pg_url(name))
    yield name
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def new_database_url(backend: str, request, tmp_path: Path) -> str:
    """A fresh migrated database for one test; dropped afterwards on PostgreSQL."""
    if backend == "sqlite":
        path = tmp_path / "lockstep.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite:///{path}"
    return new_pg_database(request, template=request.getfixturevalue("pg_template"))


def new_pg_database(request, *, template: str | None = None) -> str:
    """URL of a new PostgreSQL database (a copy of `template`, else empty); dropped after the test."""
    name = f"lockstep_t_{uuid.uuid4().hex[:12]}"
    admin = _pg_admin()
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else "")))

    def _drop():
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    request.addfinalizer(_drop)
    return _pg_url(name)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def backend(request) -> str:
    """Each data-layer test runs once per backend."""
    return request.param


@pytest.fixture
def db_url(backend, request, tmp_path) -> str:
    """URL of a fresh, migrated database on the test's backend."""
    return new_database_url(backend, request, tmp_path)


@pytest.fixture
def engine(db_url):
    """Engine over a fresh, migrated database on the test's backend."""
    eng = make_engine(db_url)
    yield eng
    eng.dispose()


@pytest.fixture
def sqlite_engine(request, tmp_path):
    """Engine over a fresh, migrated SQLite database (for tests that need one backend)."""
    eng = make_engine(new_database_url("sqlite", request, tmp_path))
    yield eng
    eng.dispose()
