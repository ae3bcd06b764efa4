"""Sign-in: argon2 passwords, a growing delay and a lock-out kept in the database, all audited."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from lockstep.db import read_session, write_session
from lockstep.models import AuditEntry, User
from lockstep.permissions import SYSTEM, Actor
from lockstep.services import audit
from lockstep.services.auth import (
    LOCKOUT,
    MAX_FAILURES,
    SIGN_IN_FAILED,
    SignInFailed,
    authenticate,
    delay_after,
    sign_in_trusted,
    sign_out,
)
from lockstep.services.users import add_user, deactivate_user, set_password

T0 = datetime(2020, 5, 1, 9, 0)
EMAIL = "dana.lee@x.example"
PASSWORD = "correct horse battery"
WRONG = "Tr0ub4dor&3-wrong"


pytestmark = pytest.mark.usefixtures("cheap_hashing")  # tests/db/conftest.py


@pytest.fixture
def users(engine):
    """Dana (account manager) and an admin, with known passwords."""
    with write_session(engine) as s:
        add_user(session=s, actor=SYSTEM, email=EMAIL, role="account_manager", password=PASSWORD)
        add_user(session=s, actor=SYSTEM, email="admin@x.example", role="admin", password=PASSWORD + "!")
    return engine


def _attempt(engine, password, *, at, email=EMAIL) -> Actor:
    # The exception leaves the write session on purpose: what was recorded must survive it.
    with write_session(engine) as s:
        return authenticate(session=s, email=email, password=password, now=at)


def _fail(engine, password=WRONG, *, at, email=EMAIL) -> str:
    with pytest.raises(SignInFailed) as info:
        _attempt(engine, password, at=at, email=email)
    return str(info.value)


def _user(engine) -> User:
    with read_session(engine) as s:
        user = s.scalar(select(User).where(User.email == EMAIL))
        s.expunge_all()
        return user


def _audit(engine, since: int = 0) -> list[AuditEntry]:
    with read_session(engine) as s:
        entries = list(s.scalars(select(AuditEntry).where(AuditEntry.id > since).order_by(AuditEntry.id)))
        s.expunge_all()
        return entries


def _last_id(engine) -> int:
    entries = _audit(engine)
    return entries[-1].id if entries else 0


def test_the_right_password_signs_in_as_the_users_role(users):
    start = _last_id(users)
    actor = _attempt(users, PASSWORD, at=T0, email="  Dana.Lee@X.example ")
    assert (actor.email, actor.role) == (EMAIL, "account_manager")
    assert actor.user_id == _user(users).id
    assert _user(users).last_login_at == T0
    [entry] = _audit(users, start)
    assert (entry.action, entry.actor, entry.entity_id) == ("auth.sign_in", EMAIL, EMAIL)
    assert entry.after["method"] == "password"


def test_unknown_email_and_wrong_password_get_the_same_message_and_are_audited(users):
    start = _last_id(users)
    wrong = _fail(users, at=T0)
    unknown = _fail(users, PASSWORD, at=T0, email="nobody@x.example")
    assert wrong == unknown == SIGN_IN_FAILED
    entries = _audit(users, start)
    assert [(e.action, e.actor, e.entity_id, e.after["reason"]) for e in entries] == [
        ("auth.sign_in_failed", "anonymous", EMAIL, "wrong password"),
        ("auth.sign_in_failed", "anonymous", "nobody@x.example", "unknown e-mail"),
    ]


def test_the_delay_doubles_with_each_failure_and_no_attempt_is_checked_inside_it(users):
    at = T0
    for n in range(1, MAX_FAILURES):
        _fail(users, at=at)
        u = _user(users)
        assert u.failed_logins == n
        assert u.locked_until == at + timedelta(seconds=2 ** (n - 1))
        at = u.locked_until
    assert _attempt(users, PASSWORD, at=at).email == EMAIL
    u = _user(users)
    assert (u.failed_logins, u.locked_until) == (0, None)


def test_an_attempt_inside_the_back_off_is_refused_unchecked_and_counts(users):
    _fail(users, at=T0)
    # Even the right password is refused before the not-before time, and counts as a failure.
    assert _fail(users, PASSWORD, at=T0 + timedelta(milliseconds=500)) == SIGN_IN_FAILED
    u = _user(users)
    assert u.failed_logins == 2
    assert u.locked_until == T0 + timedelta(milliseconds=500) + delay_after(2)
    entry = _audit(users)[-1]
    assert (entry.action, entry.after["reason"], entry.after["failures"]) == ("auth.locked", "back-off", 2)


def test_six_quick_wrong_guesses_then_the_right_password_is_locked_out(users):
    start = _last_id(users)
    for i in range(6):
        _fail(users, at=T0 + timedelta(milliseconds=100 * i))
    assert _fail(users, PASSWORD, at=T0 + timedelta(seconds=1)) == SIGN_IN_FAILED
    u = _user(users)
    assert u.failed_logins == 7
    assert u.locked_until >= T0 + LOCKOUT
    actions = [e.action for e in _audit(users, start)]
    assert actions == ["auth.sign_in_failed"] + ["auth.locked"] * 6
    assert "auth.sign_in" not in actions


def test_after_max_failures_the_account_is_locked_for_the_lockout(users):
    at = T0
    for _ in range(MAX_FAILURES):
        _fail(users, at=at)
        at = _user(users).locked_until
    u = _user(users)
    locked_at = u.locked_until - LOCKOUT
    assert u.failed_logins == MAX_FAILURES
    assert u.locked_until - locked_at == timedelta(minutes=15)
    start = _last_id(users)
    # The right password a second before the lock ends: refused, counted, and the lock runs on.
    last_try = locked_at + LOCKOUT - timedelta(seconds=1)
    _fail(users, PASSWORD, at=last_try)
    [entry] = _audit(users, start)
    assert entry.action == "auth.locked" and entry.after["failures"] == MAX_FAILURES + 1
    assert _user(users).locked_until == last_try + LOCKOUT
    # Once a whole lock-out passes without attempts, the right password gets in and clears it.
    assert _attempt(users, PASSWORD, at=last_try + LOCKOUT).role == "account_manager"
    assert (_user(users).failed_logins, _user(users).locked_until) == (0, None)


def test_an_admin_resetting_the_password_lifts_the_lock(users):
    at = T0
    for _ in range(MAX_FAILURES):
        _fail(users, at=at)
        at = _user(users).locked_until
    with write_session(users) as s:
        set_password(session=s, actor=SYSTEM, email=EMAIL, password="a new long password")
    assert _attempt(users, "a new long password", at=T0 + timedelta(minutes=1)).email == EMAIL


def test_a_deactivated_user_is_refused_with_the_same_message(users):
    with write_session(users) as s:
        deactivate_user(session=s, actor=SYSTEM, email=EMAIL)
    assert _fail(users, PASSWORD, at=T0) == SIGN_IN_FAILED
    assert _audit(users)[-1].after["reason"] == "inactive"


def test_the_password_is_never_written_to_the_audit_log(users):
    _fail(users, at=T0)
    _fail(users, WRONG + "2", at=T0, email="ghost@x.example")
    _attempt(users, PASSWORD, at=T0 + timedelta(seconds=1))
    text = " ".join(f"{e.before} {e.after} {e.entity_id} {e.actor}" for e in _audit(users))
    for secret in (PASSWORD, WRONG, WRONG + "2", "argon2"):
        assert secret not in text
    with read_session(users) as s:
        assert audit.verify(s).ok


def test_trusted_sign_in_maps_a_known_email_to_its_role_and_refuses_others(users):
    with write_session(users) as s:
        actor = sign_in_trusted(session=s, email="ADMIN@x.example", method="sso", now=T0)
    assert (actor.email, actor.role) == ("admin@x.example", "admin")
    with pytest.raises(SignInFailed, match="has no active Lockstep account"), write_session(users) as s:
        sign_in_trusted(session=s, email="stranger@elsewhere.example", method="sso", now=T0)
    entries = _audit(users)[-2:]
    assert [(e.action, e.after["method"]) for e in entries] == [
        ("auth.sign_in", "sso"),
        ("auth.sign_in_failed", "sso"),
    ]


def test_sign_out_is_audited(users):
    actor = _attempt(users, PASSWORD, at=T0)
    with write_session(users) as s:
        sign_out(session=s, actor=actor)
    entry = _audit(users)[-1]
    assert (entry.action, entry.actor) == ("auth.sign_out", EMAIL)


@pytest.mark.parametrize(
    "failures, seconds", [(0, 0), (1, 1), (2, 2), (3, 4), (4, 8), (5, 900), (9, 900)]
)
def test_delay_after(failures, seconds):
    assert delay_after(failures) == timedelta(seconds=seconds)
