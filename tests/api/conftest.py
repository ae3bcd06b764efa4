"""Fixtures for the HTTP API: a seeded database on each backend, tokens for every role, a client.

The client is FastAPI's TestClient over the real app and the `engine` fixture's database,
so each test body runs against SQLite and PostgreSQL. Its HTTP client is httpx2 (pinned in
requirements-dev.txt): Starlette's TestClient takes it first and deprecates plain httpx.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from lockstep.api import create_app
from lockstep.clock import utcnow
from lockstep.db import read_session, write_session
from lockstep.models import Base, User
from lockstep.permissions import SYSTEM
from lockstep.services.api_tokens import add_api_token
from tests.builders import MANAGERS, add_tenants, seed_plan


@dataclass
class World:
    """The database, a client, a token per role and tenants of the first manager and of another."""

    engine: object
    client: TestClient
    tokens: dict[str, str]
    own: str  # a paid tenant of MANAGERS[0], whose token is tokens["account_manager"]
    other: str  # a tenant of another manager


def add_user_row(session, email: str, role: str, active: bool = True) -> User:
    """A user inserted directly (no password: API tokens do not sign in)."""
    user = User(
        email=email,
        display_name=email.split("@")[0],
        role=role,
        password_hash=None,
        is_active=active,
        failed_logins=0,
        created_at=utcnow(),
    )
    session.add(user)
    session.flush()
    return user


@pytest.fixture
def world(engine) -> World:
    with write_session(engine) as s:
        seed_plan(s)
        tenants = add_tenants(s, 10, seed=1)
        add_user_row(s, MANAGERS[0], "account_manager")
        tokens = {}
        for role in ("admin", "security_lead", "executive"):
            tokens[role] = add_api_token(session=s, actor=SYSTEM, name=f"{role}-bot", role=role)[1]
        tokens["account_manager"] = add_api_token(
            session=s, actor=SYSTEM, name="ana-reader", role="account_manager", user_email=MANAGERS[0]
        )[1]
    own = next(t.external_id for t in tenants if t.account_manager == MANAGERS[0] and t.tier != "free")
    other = next(t.external_id for t in tenants if t.account_manager != MANAGERS[0])
    client = TestClient(create_app(engine), raise_server_exceptions=False)
    yield World(engine, client, tokens, own, other)
    client.close()


@pytest.fixture
def down_client(backend, tmp_path):
    """A client whose database cannot be reached (a SQLite file in a missing folder, a closed port)."""
    from lockstep.db import make_engine

    url = (
        f"sqlite:///{tmp_path / 'missing' / 'lockstep.db'}"
        if backend == "sqlite"
        else "postgresql+psycopg://postgres@127.0.0.1:1/lockstep_missing"
    )
    engine = make_engine(url)
    client = TestClient(create_app(engine), raise_server_exceptions=False)
    yield client
    client.close()
    engine.dispose()


def bearer(token: str) -> dict[str, str]:
    """The Authorization header for `token`."""
    return {"Authorization": f"Bearer {token}"}


def table_fingerprint(engine) -> dict[str, tuple[int, str]]:
    """Row count and a digest of the full contents of every table."""
    out = {}
    with read_session(engine) as s:
        for table in Base.metadata.sorted_tables:
            rows = s.execute(select(table)).all()
            digest = hashlib.sha256(repr(sorted(map(repr, rows))).encode()).hexdigest()
            out[table.name] = (len(rows), digest)
    return out
