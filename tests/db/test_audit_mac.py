"""Audit forgery (issue 18, item 7): a MAC per entry under a key kept outside the database.

Someone with write access to the database can recompute hashes, so the chain alone cannot
tell their appended entry from a real one, nor an emptied log from a new database. With
LOCKSTEP_AUDIT_KEY set every entry carries an HMAC of its hash; these tests forge entries
the way such a person would (raw SQL, correct hash, head row moved along) and check that
`verify` and `audit verify` refuse them. On PostgreSQL the app's role may only INSERT and
SELECT on the audit log (`db grant-app-role`).
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import ProgrammingError

from lockstep.config import get_settings
from lockstep.db import make_engine, read_session, write_session
from lockstep.errors import ValidationError
from lockstep.migrate import grant_app_role
from lockstep.models import AuditEntry
from lockstep.permissions import SYSTEM
from lockstep.services import audit
from tests.builders import add_tenants, seed_plan
from tests.db.test_audit_chain import _cli

KEY = "k3y-" + "0123456789abcdef" * 3


@pytest.fixture
def audit_key(monkeypatch):
    """The audit key set, as `make run` sets it from data/audit.key."""
    monkeypatch.setenv("LOCKSTEP_AUDIT_KEY", KEY)
    get_settings.cache_clear()
    yield KEY.encode()
    get_settings.cache_clear()


def write_entries(engine, n: int, start: int = 1) -> None:
    with write_session(engine) as s:
        for i in range(start, start + n):
            audit.append(s, SYSTEM, "test.write", "thing", i, after={"v": i})


def forge(engine, *, mac: str | None) -> int:
    """Append an entry in raw SQL with a correct hash and move the head row, as an insider would."""
    with read_session(engine) as s:
        last_id, last_hash = s.execute(
            select(AuditEntry.id, AuditEntry.hash).order_by(AuditEntry.id.desc()).limit(1)
        ).one()
    new_id, at = last_id + 1, datetime(2020, 6, 1, 12)
    digest = audit.entry_hash(last_hash, id=new_id, at=at, actor="admin@lockstep.example",
                              action="user.add", entity_type="user", entity_id="mallory@evil.example",
                              before=None, after={"role": "admin"})
    with engine.begin() as conn:
        conn.execute(
            text("INSERT INTO audit_log (id, at, actor, action, entity_type, entity_id, before, after, "
                 "prev_hash, hash, mac) VALUES (:id, :at, 'admin@lockstep.example', 'user.add', 'user', "
                 "'mallory@evil.example', NULL, :after, :prev, :hash, :mac)"),
            {"id": new_id, "at": at, "after": json.dumps({"role": "admin"}), "prev": last_hash,
             "hash": digest, "mac": mac},
        )
        conn.execute(text("UPDATE audit_head SET last_id = :id, hash = :hash WHERE id = 1"),
                     {"id": new_id, "hash": digest})
    return new_id


def verify(engine, **kw) -> audit.VerifyResult:
    with read_session(engine) as s:
        return audit.verify(s, **kw)


def test_keyed_entries_verify_only_with_the_key(engine, audit_key):
    write_entries(engine, 4)
    with read_session(engine) as s:
        macs = s.scalars(select(AuditEntry.mac).order_by(AuditEntry.id)).all()
    assert len(macs) == 4 and all(m and len(m) == 64 for m in macs)
    result = verify(engine)
    assert result.ok and (result.keyed, result.unkeyed) == (4, 0)
    refused = verify(engine, key=None)
    assert not refused.ok and "no audit key was given" in refused.problem and refused.bad_id == 1
    wrong = verify(engine, key=b"x" * 40)
    assert not wrong.ok and "entry 1 has no valid MAC" in wrong.problem
    cli = _cli(engine)  # the subprocess inherits LOCKSTEP_AUDIT_KEY
    assert cli.returncode == 0 and "4 entries" in cli.stdout
    cli = _cli(engine, env_extra={"LOCKSTEP_AUDIT_KEY": ""})
    assert cli.returncode == 1 and "set LOCKSTEP_AUDIT_KEY" in cli.stderr


@pytest.mark.parametrize("mac", [None, "0" * 64], ids=["no MAC", "made-up MAC"])
def test_an_entry_appended_with_a_recomputed_hash_is_caught(engine, audit_key, mac):
    write_entries(engine, 3)
    forged = forge(engine, mac=mac)  # its hash and the head row are right: the chain alone passes it
    result = verify(engine)
    assert not result.ok and result.bad_id == forged and result.checked == 3
    reason = "has no MAC although entries from 1 on have one" if mac is None else "has no valid MAC"
    assert reason in result.problem
    cli = _cli(engine)
    assert cli.returncode == 1 and f"entry {forged}" in cli.stderr


def test_entries_from_before_the_key_stay_verifiable(engine, monkeypatch):
    write_entries(engine, 3)  # no key: written unkeyed, as before this change
    monkeypatch.setenv("LOCKSTEP_AUDIT_KEY", KEY)
    get_settings.cache_clear()
    try:
        write_entries(engine, 2, start=4)
        result = verify(engine)
        assert result.ok and (result.keyed, result.unkeyed) == (2, 3)
        forged = forge(engine, mac=None)  # an unkeyed entry after keyed ones
        assert verify(engine).bad_id == forged
    finally:
        get_settings.cache_clear()


def test_an_emptied_log_of_a_database_with_data_is_reported(engine):
    with write_session(engine) as s:
        seed_plan(s)
        add_tenants(s, 10, seed=1)
    write_entries(engine, 2)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_log"))
        conn.execute(text("DELETE FROM audit_head"))
    result = verify(engine)
    assert not result.ok
    assert result.problem.startswith("the audit log is empty but the database holds 10 tenants")
    cli = _cli(engine)
    assert cli.returncode == 1 and "the log was emptied" in cli.stderr


def test_an_empty_new_database_verifies(engine):
    assert verify(engine).ok


def test_the_app_role_may_only_insert_and_read_the_audit_log(engine, backend, audit_key):
    if backend == "sqlite":
        with pytest.raises(ValidationError, match="is for PostgreSQL"):
            grant_app_role(engine, "lockstep_app")
        return
    role = f"numbers_app_{uuid.uuid4().hex[:8]}"
    with engine.begin() as conn:
        conn.execute(text(f"CREATE ROLE {role} LOGIN"))
    app = make_engine(engine.url.set(username=role).render_as_string(hide_password=False))
    try:
        grant_app_role(engine, role)
        write_entries(app, 2)  # the app's own writes: INSERT, and the head row moves
        assert verify(app).ok
        for sql in ("UPDATE audit_log SET actor = 'x' WHERE id = 1", "DELETE FROM audit_log WHERE id = 2",
                    "TRUNCATE audit_log"):
            with pytest.raises(ProgrammingError, match="permission denied"), app.begin() as conn:
                conn.execute(text(sql))
        with read_session(engine) as s:
            assert s.scalar(text("SELECT count(*) FROM audit_log")) == 2
    finally:
        app.dispose()
        with engine.begin() as conn:
            conn.execute(text(f"DROP OWNED BY {role}"))
            conn.execute(text(f"DROP ROLE {role}"))


def test_an_unkeyed_write_after_keyed_entries_is_refused_and_changes_nothing(engine, monkeypatch):
    monkeypatch.setenv("LOCKSTEP_AUDIT_KEY", KEY)
    get_settings.cache_clear()
    write_entries(engine, 2)
    monkeypatch.delenv("LOCKSTEP_AUDIT_KEY")
    get_settings.cache_clear()
    with pytest.raises(audit.AuditKeyMissing, match="no audit key is set.*LOCKSTEP_AUDIT_KEY_FILE"):
        write_entries(engine, 1, start=3)
    monkeypatch.setenv("LOCKSTEP_AUDIT_KEY", KEY)
    get_settings.cache_clear()
    assert verify(engine).ok and verify(engine).checked == 2
    get_settings.cache_clear()


def test_without_either_variable_the_key_file_make_run_made_is_used(monkeypatch, tmp_path):
    from lockstep import config

    key_file = tmp_path / "audit.key"
    key_file.write_text(KEY + "\n")
    monkeypatch.setattr(config, "DEFAULT_AUDIT_KEY_FILE", key_file)
    assert config.Settings.from_env({}).audit_key == KEY.encode()
    # An explicit empty LOCKSTEP_AUDIT_KEY_FILE opts out; an explicit key wins over the file.
    assert config.Settings.from_env({"LOCKSTEP_AUDIT_KEY_FILE": ""}).audit_key is None
    other = "z" * 40
    assert config.Settings.from_env({"LOCKSTEP_AUDIT_KEY": other}).audit_key == other.encode()
