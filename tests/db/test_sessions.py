"""Server-side sessions: hashed tokens, a one-time hand-off, idle and absolute expiry, every way one ends."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import select, text

from lockstep.config import get_settings
from lockstep.db import read_session, write_session
from lockstep.models import UserSession
from lockstep.permissions import SYSTEM
from lockstep.services import sessions
from lockstep.services.auth import actor_for, authenticate, sign_out
from lockstep.services.users import add_user, deactivate_user, set_password, set_role

T0 = datetime(2026, 12, 1, 9, 0)
EMAIL = "dana.lee@x.example"
PASSWORD = "correct horse battery"
NEW_PASSWORD = "staple battery horse"

pytestmark = pytest.mark.usefixtures("cheap_hashing")  # tests/db/conftest.py


@pytest.fixture
def dana(engine):
    with write_session(engine) as s:
        user = add_user(session=s, actor=SYSTEM, email=EMAIL, role="account_manager", password=PASSWORD)
        add_user(session=s, actor=SYSTEM, email="admin@x.example", role="admin", password=PASSWORD)
        return actor_for(user)


def _open(engine, actor, at=T0) -> str:
    """Sign in and trade the code as the browser does; the cookie token."""
    with write_session(engine) as s:
        code = sessions.start_session(session=s, actor=actor, method="password", address="192.0.2.1", now=at)
    with write_session(engine) as s:
        return sessions.activate_session(session=s, code=code, now=at + timedelta(seconds=1)).token


def _check(engine, token, at) -> sessions.SessionCheck:
    with read_session(engine) as s:
        return sessions.check_session(session=s, token=token, now=at)


def test_only_hashes_are_stored_and_the_code_works_once(engine, dana):
    with write_session(engine) as s:
        code = sessions.start_session(session=s, actor=dana, method="password", now=T0)
    # Not usable as a cookie before it is traded.
    assert _check(engine, code, T0).actor is None
    with write_session(engine) as s:
        activated = sessions.activate_session(session=s, code=code, now=T0 + timedelta(seconds=5))
    assert activated.expires_at == T0 + timedelta(days=get_settings().session_days)
    token = activated.token
    assert len(token) >= 43 and token != code  # 32 random bytes, url-safe base64
    with write_session(engine) as s:
        assert sessions.activate_session(session=s, code=code, now=T0 + timedelta(seconds=6)) is None
    with engine.connect() as conn:
        stored = conn.execute(text("SELECT * FROM user_sessions")).mappings().one()
    assert stored["token_hash"] == sessions.token_hash(token)
    assert token not in str(dict(stored)) and code not in str(dict(stored))
    with read_session(engine) as s:
        assert s.scalar(select(UserSession.activated_at)) == T0 + timedelta(seconds=5)
    assert _check(engine, token, T0 + timedelta(minutes=1)).actor == dana


def test_a_code_older_than_a_minute_is_refused(engine, dana):
    with write_session(engine) as s:
        code = sessions.start_session(session=s, actor=dana, method="password", now=T0)
    with write_session(engine) as s:
        late = T0 + sessions.HANDOFF + timedelta(seconds=1)
        assert sessions.activate_session(session=s, code=code, now=late) is None
    with write_session(engine) as s:
        assert sessions.activate_session(session=s, code="made-up", now=T0) is None


def test_idle_timeout_and_absolute_lifetime(engine, dana):
    token = _open(engine, dana)
    idle = timedelta(hours=get_settings().session_idle_hours)
    assert _check(engine, token, T0 + idle).actor == dana
    check = _check(engine, token, T0 + idle + timedelta(seconds=2))
    assert (check.actor, check.problem) == (None, "idle")
    # Kept busy, it still ends at its absolute lifetime.
    at = T0
    lifetime = timedelta(days=get_settings().session_days)
    while at < T0 + lifetime - timedelta(hours=1):
        at += timedelta(hours=1)
        with write_session(engine) as s:
            sessions.touch_session(session=s, session_id=check.session_id, now=at)
    assert _check(engine, token, at).actor == dana
    assert _check(engine, token, T0 + lifetime + timedelta(seconds=1)).problem == "expired"


def test_last_seen_needs_a_write_only_once_a_minute(engine, dana):
    token = _open(engine, dana)
    assert not _check(engine, token, T0 + timedelta(seconds=30)).stale
    assert _check(engine, token, T0 + timedelta(minutes=2)).stale


def test_the_idle_timeout_follows_the_setting(engine, dana, monkeypatch):
    token = _open(engine, dana)
    monkeypatch.setenv("LOCKSTEP_SESSION_IDLE_HOURS", "1")
    get_settings.cache_clear()
    try:
        assert _check(engine, token, T0 + timedelta(minutes=62)).problem == "idle"
    finally:
        get_settings.cache_clear()


@pytest.mark.parametrize("change, reason", [
    (lambda s: set_role(session=s, actor=SYSTEM, email=EMAIL, role="executive"), "role changed"),
    (lambda s: deactivate_user(session=s, actor=SYSTEM, email=EMAIL), "deactivated"),
    (lambda s: set_password(session=s, actor=SYSTEM, email=EMAIL, password=NEW_PASSWORD), "password changed"),
])
def test_a_role_change_deactivation_or_new_password_ends_every_session(engine, dana, change, reason):
    first, second = _open(engine, dana), _open(engine, dana)
    with write_session(engine) as s:
        admin = authenticate(session=s, email="admin@x.example", password=PASSWORD, now=T0)
    admin_token = _open(engine, admin)
    with write_session(engine) as s:
        change(s)
    for token in (first, second):
        check = _check(engine, token, T0 + timedelta(minutes=1))
        assert (check.actor, check.problem) == (None, "ended")
    with read_session(engine) as s:
        rows = s.scalars(select(UserSession).where(UserSession.user_id == dana.user_id))
        assert {r.ended_reason for r in rows} == {reason}
    # Someone else's session is untouched.
    assert _check(engine, admin_token, T0 + timedelta(minutes=1)).actor == admin


def test_sign_out_ends_all_of_the_users_sessions_and_says_how_many(engine, dana):
    first, second = _open(engine, dana), _open(engine, dana)
    with write_session(engine) as s:
        assert sign_out(session=s, actor=dana) == 2
    assert _check(engine, first, T0).problem == "ended"
    assert _check(engine, second, T0).problem == "ended"
    with engine.connect() as conn:
        after = conn.execute(text("SELECT after FROM audit_log WHERE action = 'auth.sign_out'")).scalar_one()
    assert "sessions_ended" in str(after)


def test_a_session_of_a_user_deactivated_behind_its_back_is_refused(engine, dana):
    token = _open(engine, dana)
    with write_session(engine) as s:
        s.execute(text("UPDATE users SET is_active = false WHERE email = :e"), {"e": EMAIL})
    assert _check(engine, token, T0).problem == "inactive"


def test_an_ended_session_is_not_revived_by_a_touch(engine, dana):
    token = _open(engine, dana)
    check = _check(engine, token, T0)
    with write_session(engine) as s:
        sessions.end_expired_session(session=s, session_id=check.session_id, reason="idle", now=T0)
        sessions.touch_session(session=s, session_id=check.session_id, now=T0 + timedelta(minutes=5))
    assert _check(engine, token, T0 + timedelta(minutes=5)).problem == "ended"
