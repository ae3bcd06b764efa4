"""Lock-out under concurrency, and the per-address throttle (SQLite and PostgreSQL).

The lock-out must hold when attempts arrive at once: ten threads send wrong passwords
together, each in its own write session (as the app does), and the right password after
them is refused; every attempt is in the audit log. The address throttle makes one
client address wait after 20 failures within 15 minutes, whatever accounts it tried.
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select

from lockstep.db import read_session, write_session
from lockstep.models import AuditEntry, SignInFailure, User
from lockstep.permissions import SYSTEM
from lockstep.services.auth import (
    ADDRESS_MAX_FAILURES,
    ADDRESS_WINDOW,
    LOCKOUT,
    MAX_FAILURES,
    SIGN_IN_FAILED,
    SignInFailed,
    address_throttled_message,
    authenticate,
)
from lockstep.services.users import add_user

T0 = datetime(2020, 5, 1, 9, 0)
EMAIL = "dana.lee@x.example"
OTHER = "sam.ortiz@x.example"
PASSWORD = "correct horse battery"
ADDRESS = "203.0.113.7"

pytestmark = pytest.mark.usefixtures("cheap_hashing")  # tests/db/conftest.py


@pytest.fixture
def users(engine):
    with write_session(engine) as s:
        add_user(session=s, actor=SYSTEM, email=EMAIL, role="account_manager", password=PASSWORD)
        add_user(session=s, actor=SYSTEM, email=OTHER, role="executive", password=PASSWORD)
    return engine


def _attempt(engine, password, *, at, email=EMAIL, address=None):
    with write_session(engine) as s:
        return authenticate(session=s, email=email, password=password, now=at, address=address)


def _refused(engine, password="wrong-password-1", **kwargs) -> str:
    with pytest.raises(SignInFailed) as info:
        _attempt(engine, password, **kwargs)
    return str(info.value)


def _audit_actions(engine, entity: str) -> list[str]:
    with read_session(engine) as s:
        return list(s.scalars(
            select(AuditEntry.action).where(AuditEntry.entity_id == entity, AuditEntry.action.like("auth.%"))
            .order_by(AuditEntry.id)
        ))


def test_ten_concurrent_wrong_passwords_lock_the_account(users):
    outcomes: list[str] = []
    barrier = threading.Barrier(10)

    def guess(i: int) -> None:
        barrier.wait()
        try:
            _attempt(users, f"wrong-guess-{i}", at=T0 + timedelta(milliseconds=i))
            outcomes.append("signed in")
        except SignInFailed:
            outcomes.append("refused")

    threads = [threading.Thread(target=guess, args=(i,)) for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes == ["refused"] * 10
    with read_session(users) as s:
        user = s.scalar(select(User).where(User.email == EMAIL))
        assert user.failed_logins == 10
        assert user.locked_until >= T0 + LOCKOUT
    # The right password two seconds later (past the first back-off): the account is locked.
    assert _refused(users, PASSWORD, at=T0 + timedelta(seconds=2)) == SIGN_IN_FAILED
    actions = _audit_actions(users, EMAIL)
    assert len(actions) == 11  # every attempt, the right one too
    assert "auth.sign_in" not in actions
    assert set(actions) <= {"auth.sign_in_failed", "auth.locked"}
    assert actions[-1] == "auth.locked"


def test_twenty_failures_from_one_address_make_it_wait(users):
    # Spread over accounts (and a made-up one) so no single account locks first.
    emails = [EMAIL, OTHER, "nobody@x.example"]
    for i in range(ADDRESS_MAX_FAILURES):
        at = T0 + timedelta(seconds=20 * i)
        _refused(users, at=at, email=emails[i % 3], address=ADDRESS)
        # Wait out each account's back-off so only the address limit is in play.
        with write_session(users) as s:
            for u in s.scalars(select(User)):
                u.locked_until, u.failed_logins = None, 0
    last = T0 + timedelta(seconds=20 * (ADDRESS_MAX_FAILURES - 1))
    # The right password from that address is not even looked at...
    message = _refused(users, PASSWORD, at=last + timedelta(seconds=1), address=ADDRESS)
    wait = T0 + ADDRESS_WINDOW - (last + timedelta(seconds=1))
    assert message == address_throttled_message(wait)
    assert _audit_actions(users, EMAIL)[-1] == "auth.address_throttled"
    # ...while another address signs in to the same account.
    assert _attempt(users, PASSWORD, at=last + timedelta(seconds=2), address="198.51.100.1").email == EMAIL
    # Once the oldest failure is 15 minutes old, the address may try again.
    later = T0 + ADDRESS_WINDOW + timedelta(seconds=1)
    assert _attempt(users, PASSWORD, at=later, address=ADDRESS).email == EMAIL


def test_nineteen_failures_do_not_throttle_and_old_ones_are_dropped(users):
    for i in range(ADDRESS_MAX_FAILURES - 1):
        _refused(users, at=T0 + timedelta(hours=i), email="nobody@x.example", address=ADDRESS)
    assert _attempt(users, PASSWORD, at=T0 + timedelta(hours=30), address=ADDRESS).email == EMAIL
    with read_session(users) as s:
        # Each failure removes its address's rows that fell out of the window.
        assert s.scalar(select(func.count()).select_from(SignInFailure)) == 1


def test_concurrent_failures_from_one_address_stop_at_the_limit(users):
    # 25 attempts at once from one address on made-up accounts: exactly 20 are checked.
    barrier = threading.Barrier(25)
    messages: list[str] = []

    def guess(i: int) -> None:
        barrier.wait()
        try:
            _attempt(users, "x" * 12, at=T0, email=f"ghost{i}@x.example", address=ADDRESS)
        except SignInFailed as exc:
            messages.append(str(exc))

    threads = [threading.Thread(target=guess, args=(i,)) for i in range(25)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert messages.count(SIGN_IN_FAILED) == ADDRESS_MAX_FAILURES
    assert messages.count(address_throttled_message(ADDRESS_WINDOW)) == 5
    with read_session(users) as s:
        assert s.scalar(select(func.count()).select_from(SignInFailure)) == ADDRESS_MAX_FAILURES


def test_a_locked_account_counts_toward_max_failures_whatever_the_address(users):
    for i in range(MAX_FAILURES):
        _refused(users, at=T0 + timedelta(milliseconds=i), address=f"192.0.2.{i}")
    assert _refused(users, PASSWORD, at=T0 + timedelta(minutes=1), address="192.0.2.99") == SIGN_IN_FAILED
