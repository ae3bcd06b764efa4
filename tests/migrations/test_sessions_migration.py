"""Migration 0009 (user_sessions, sign_in_failures): users survive it both ways; downgrade drops it."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import inspect, text

from lockstep.db import make_engine
from lockstep.migrate import downgrade, upgrade

NEW_TABLES = {"user_sessions", "sign_in_failures"}


def _tables(engine) -> set[str]:
    return set(inspect(engine).get_table_names())


def test_users_survive_the_upgrade_and_the_downgrade(db_url):
    engine = make_engine(db_url)
    try:
        downgrade(db_url, "0008")
        assert not NEW_TABLES & _tables(engine)
        with engine.begin() as conn:
            conn.execute(text(
                "INSERT INTO users (email, display_name, role, password_hash, is_active, failed_logins, "
                "created_at) VALUES ('kept@x.example', 'Kept', 'admin', '$argon2id$x', true, 2, :t)"
            ), {"t": datetime(2026, 12, 1)})
        upgrade(db_url)
        assert _tables(engine) >= NEW_TABLES
        with engine.begin() as conn:
            user_id = conn.execute(text("SELECT id FROM users WHERE email = 'kept@x.example'")).scalar_one()
            conn.execute(text(
                "INSERT INTO user_sessions (token_hash, user_id, method, created_at, last_seen_at, "
                "expires_at) VALUES (:h, :u, 'password', :t, :t, :t)"
            ), {"h": "a" * 64, "u": user_id, "t": datetime(2026, 12, 1)})
            conn.execute(text("INSERT INTO sign_in_failures (address, at) VALUES ('192.0.2.1', :t)"),
                         {"t": datetime(2026, 12, 1)})
        downgrade(db_url, "0008")
        assert not NEW_TABLES & _tables(engine)
        with engine.connect() as conn:
            kept = text("SELECT failed_logins FROM users WHERE email = 'kept@x.example'")
            assert conn.execute(kept).scalar() == 2
        upgrade(db_url)
        assert _tables(engine) >= NEW_TABLES
    finally:
        engine.dispose()
