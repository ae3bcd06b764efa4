"""Migration 0007: API tokens, idempotency answers and deliveries come and go; other rows stay."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import inspect, text

from lockstep.db import make_engine
from lockstep.migrate import downgrade, upgrade

NEW = {"api_tokens", "api_idempotency", "deliveries"}
AT = datetime(2020, 5, 1, 9, 0)


def _tables(eng) -> set[str]:
    return set(inspect(eng).get_table_names())


def test_0007_adds_and_removes_its_tables_and_keeps_the_rest(db_url):
    downgrade(db_url, "0006")
    eng = make_engine(db_url)
    try:
        assert not NEW & _tables(eng)
        with eng.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO users (email, display_name, role, is_active, failed_logins, created_at) "
                    "VALUES ('kept@example.com', 'Kept', 'admin', true, 0, :at)"
                ),
                {"at": AT},
            )
        upgrade(db_url, "0007")
        assert _tables(eng) >= NEW
        with eng.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO api_tokens (name, token_hash, role, created_at, created_by) "
                    "VALUES ('ci', :h, 'security_lead', :at, 'kept@example.com')"
                ),
                {"h": "a" * 64, "at": AT},
            )
            token_id = conn.execute(text("SELECT id FROM api_tokens")).scalar_one()
            conn.execute(
                text(
                    "INSERT INTO api_idempotency "
                    "(token_id, key, request_sha256, status, response, created_at) "
                    "VALUES (:t, 'k1', :h, 201, :r, :at)"
                ),
                {"t": token_id, "h": "b" * 64, "r": '{"added": 1}', "at": AT},
            )
            conn.execute(
                text(
                    "INSERT INTO deliveries (kind, period, recipients, subject, sent_at, sent_by) "
                    "VALUES ('weekly', '2020-W21', :r, 'Lockstep weekly report', :at, 'system@lockstep')"
                ),
                {"r": '["exec@example.com"]', "at": AT},
            )
        with eng.connect() as conn:
            assert conn.execute(text("SELECT name, role FROM api_tokens")).one() == ("ci", "security_lead")
            assert conn.execute(text("SELECT count(*) FROM api_idempotency")).scalar_one() == 1
        downgrade(db_url, "0006")
        assert not NEW & _tables(eng)
        with eng.connect() as conn:
            assert conn.execute(text("SELECT email FROM users")).scalar_one() == "kept@example.com"
        upgrade(db_url)
        with eng.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM api_tokens")).scalar_one() == 0
    finally:
        eng.dispose()
