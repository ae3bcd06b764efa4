"""Migration 0008 (audit MAC): entries written before it stay verifiable; downgrade keeps the chain."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import inspect, text

from lockstep.config import get_settings
from lockstep.db import make_engine, read_session, write_session
from lockstep.migrate import downgrade, upgrade
from lockstep.permissions import SYSTEM
from lockstep.services import audit


def test_entries_from_before_0008_verify_after_it_and_a_keyed_log_survives_downgrade(db_url, monkeypatch):
    downgrade(db_url, "0007")
    eng = make_engine(db_url)
    try:
        with eng.begin() as conn:  # an entry as 0007 stored it, without the mac column
            digest = audit.entry_hash(audit.GENESIS, id=1, at=datetime(2020, 4, 1),
                                      actor="system", action="test.write", entity_type="thing",
                                      entity_id="1", before=None, after=None)
            conn.execute(text(
                "INSERT INTO audit_log (id, at, actor, action, entity_type, entity_id, before, after, "
                "prev_hash, hash) VALUES (1, '2020-04-01 00:00:00', 'system', 'test.write', 'thing', '1', "
                "NULL, NULL, :prev, :hash)"), {"prev": audit.GENESIS, "hash": digest})
            conn.execute(text("INSERT INTO audit_head (id, last_id, hash) VALUES (1, 1, :h)"), {"h": digest})
        upgrade(db_url, "head")
        monkeypatch.setenv("LOCKSTEP_AUDIT_KEY", "m" * 40)
        get_settings.cache_clear()
        with write_session(eng) as s:
            audit.append(s, SYSTEM, "test.write", "thing", 2)
        with read_session(eng) as s:
            result = audit.verify(s)
        assert result.ok and (result.unkeyed, result.keyed) == (1, 1)
        eng.dispose()
        downgrade(db_url, "0007")
        eng = make_engine(db_url)
        assert "mac" not in {c["name"] for c in inspect(eng).get_columns("audit_log")}
        with read_session(eng) as s:
            assert s.scalar(text("SELECT count(*) FROM audit_log")) == 2
        upgrade(db_url, "head")
        with read_session(eng) as s:
            assert audit.verify(s, key=None).ok  # the MACs went with the column: both entries unkeyed
    finally:
        get_settings.cache_clear()
        eng.dispose()
