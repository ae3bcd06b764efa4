"""Sign-in and sign-out: local passwords (argon2) with throttling and lock-out, or a trusted identity.

Throttling lives in the database, not in a sleep: after the n-th failure in a row the
account's `locked_until` is set 2^(n-1) seconds ahead (1, 2, 4, 8 s), and from the
MAX_FAILURES-th failure on, LOCKOUT ahead. Until then every attempt is refused without
looking at the password, and it COUNTS as a failure: six quick guesses are six failures,
so the sixth locks the account whatever came next. A success clears the count.

The count, the back-off and the lock are decided in one transaction that holds the user's
row: SELECT ... FOR UPDATE on PostgreSQL, and the database write lock on SQLite (callers
use lockstep.db.write_session, which begins with BEGIN IMMEDIATE). The increment itself is
an UPDATE ... SET failed_logins = failed_logins + 1 RETURNING, so no attempt is lost even
under a caller that forgot the lock. Concurrent attempts on one account take turns.

Per client address as well: ADDRESS_MAX_FAILURES failed sign-ins from one address within
ADDRESS_WINDOW and that address waits until the oldest of them is ADDRESS_WINDOW old
(attempts it makes meanwhile are refused unchecked and audited). Which address a request
comes from is the caller's business (see lockstep/ui/session.py and docs/security.md).

Unknown e-mail, wrong password, a locked or inactive account: all get the same message,
so the form does not tell which e-mails have accounts. Every attempt is audited
(auth.sign_in, auth.sign_in_failed, auth.locked, auth.address_throttled; never the
password). A failure is committed before SignInFailed is raised: the caller's rollback on
the exception must not erase the attempt, or the lock-out would never count.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from functools import lru_cache

from sqlalchemy import delete, func, select, text, update
from sqlalchemy.orm import Session

from lockstep.clock import utcnow
from lockstep.db import is_sqlite
from lockstep.errors import LockstepError
from lockstep.models import SignInFailure, User
from lockstep.permissions import Actor
from lockstep.services import audit
from lockstep.services.sessions import revoke_sessions_for_user
from lockstep.services.users import hash_password, normalize_email, verify_password

MAX_FAILURES = 5
LOCKOUT = timedelta(minutes=15)
MAX_DELAY = timedelta(seconds=60)
ANONYMOUS = "anonymous"
ADDRESS_MAX_FAILURES = 20
ADDRESS_WINDOW = timedelta(minutes=15)

SIGN_IN_FAILED = (
    f"Wrong e-mail or password. After {MAX_FAILURES} failed attempts in a row an account "
    f"is locked for {LOCKOUT.seconds // 60} minutes."
)




def address_throttled_message(wait: timedelta) -> str:
    """What a client address that must wait is told (nothing about any account)."""
    minutes = max(1, -(-int(wait.total_seconds()) // 60))
    return (
        f"Too many failed sign-ins from your network address. Wait {minutes} minute(s), then try again."
    )


class SignInFailed(LockstepError):
    """Sign-in was refused; the message is the same whatever the reason."""


def delay_after(failures: int) -> timedelta:
    """How long an account refuses attempts after `failures` failures in a row."""
    if failures <= 0:
        return timedelta(0)
    if failures >= MAX_FAILURES:
        return LOCKOUT
    return min(timedelta(seconds=2 ** (failures - 1)), MAX_DELAY)


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    return hash_password("not-a-password-of-anyone")


def actor_for(user: User) -> Actor:
    """The Actor a signed-in user acts as."""
    return Actor(email=user.email, role=user.role, user_id=user.id)


def _entity(email: str) -> str:
    # Attacker-chosen text: keep it short; the audit page shows it as text, never HTML.
    return email[:128]


def _refuse(session: Session, action: str, email: str, detail: dict, message: str = SIGN_IN_FAILED):
    audit.append(session, ANONYMOUS, action, "user", _entity(email), after=detail)
    session.commit()
    raise SignInFailed(message)


def _lock_address(session: Session, address: str) -> None:
    # Attempts from one address take turns, so 20 concurrent ones cannot all see 19.
    # SQLite needs nothing: the write session already holds the database's write lock.
    if not is_sqlite(session):
        key = int.from_bytes(hashlib.sha256(address.encode()).digest()[:8], "big", signed=True)
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


def address_wait(*, session: Session, address: str, now: datetime) -> timedelta:
    """How long `address` must wait before its next sign-in attempt is looked at (zero: not at all)."""
    # The ADDRESS_MAX_FAILURES-th most recent failure inside the window: once it ages out
    # of the window, fewer than the limit remain.
    oldest_that_counts = session.scalar(
        select(SignInFailure.at)
        .where(SignInFailure.address == address, SignInFailure.at > now - ADDRESS_WINDOW)
        .order_by(SignInFailure.at.desc())
        .offset(ADDRESS_MAX_FAILURES - 1)
        .limit(1)
    )
    if oldest_that_counts is None:
        return timedelta(0)
    return max(timedelta(0), oldest_that_counts + ADDRESS_WINDOW - now)


def _record_address_failure(session: Session, address: str | None, now: datetime) -> None:
    if not address:
        return
    # Rows outside the window never count again; dropping them here keeps the table small.
    session.execute(
        delete(SignInFailure)
        .where(SignInFailure.address == address, SignInFailure.at <= now - ADDRESS_WINDOW)
    )
    session.add(SignInFailure(address=address, at=now))
    session.flush()


def _count_failure(session: Session, user: User, now: datetime) -> tuple[int, datetime]:
    """Add one failure to the user's row and push its not-before time; returns (failures, locked_until)."""
    failures = session.execute(
        update(User)
        .where(User.id == user.id)
        .values(failed_logins=func.coalesce(User.failed_logins, 0) + 1)
        .returning(User.failed_logins)
        .execution_options(synchronize_session=False)
    ).scalar_one()
    # Never shortens a lock already in place: an attempt during the lock-out extends it.
    until = now + delay_after(failures)
    if user.locked_until is not None and user.locked_until > until:
        until = user.locked_until
    session.execute(
        update(User).where(User.id == user.id).values(locked_until=until)
        .execution_options(synchronize_session=False)
    )
    session.expire(user)
    return failures, until


def authenticate(
    *,
    session: Session,
    email: str,
    password: str,
    now: datetime | None = None,
    address: str | None = None,
) -> Actor:
    """Check an e-mail and password from a client address; return the Actor, or raise SignInFailed (kept)."""
    now = now or utcnow()
    email = normalize_email(email)[:254]
    address = (address or "")[:64] or None
    if address:
        _lock_address(session, address)
        wait = address_wait(session=session, address=address, now=now)
        if wait:
            detail = {"reason": "address throttled", "address": address,
                      "wait_seconds": int(wait.total_seconds())}
            _refuse(session, "auth.address_throttled", email, detail, address_throttled_message(wait))
    # The row lock makes concurrent attempts on one account take turns, so each sees the last one's count.
    user = session.scalar(select(User).where(User.email == email).with_for_update())
    if user is None:
        # Spend the same argon2 time as a real check, so response time does not reveal accounts.
        verify_password(_dummy_hash(), password or "")
        _record_address_failure(session, address, now)
        _refuse(session, "auth.sign_in_failed", email, {"reason": "unknown e-mail", "address": address})
    if user.locked_until is not None and now < user.locked_until:
        verify_password(_dummy_hash(), password or "")
        reason = "locked" if (user.failed_logins or 0) >= MAX_FAILURES else "back-off"
        failures, until = _count_failure(session, user, now)
        _record_address_failure(session, address, now)
        _refuse(session, "auth.locked", email, {
            "reason": reason, "failures": failures, "locked_until": until, "address": address,
        })
    if not verify_password(user.password_hash, password or "") or not user.is_active:
        # An inactive account is checked after the password, so it costs the same time.
        reason = "inactive" if user.is_active is False else "wrong password"
        if not user.password_hash:
            reason = "no password (single sign-on only)"
        failures, until = _count_failure(session, user, now)
        _record_address_failure(session, address, now)
        _refuse(session, "auth.sign_in_failed", email, {
            "reason": reason, "failures": failures, "locked_until": until, "address": address,
        })
    before = {"failures": user.failed_logins, "last_login_at": user.last_login_at}
    user.failed_logins, user.locked_until, user.last_login_at = 0, None, now
    session.flush()
    audit.append(session, user.email, "auth.sign_in", "user", user.email,
                 before=before, after={"method": "password", "last_login_at": now, "address": address})
    return actor_for(user)


def sign_in_trusted(*, session: Session, email: str, method: str, now: datetime | None = None) -> Actor:
    """Sign in someone whose identity was proved elsewhere (SSO, or a development shortcut)."""
    now = now or utcnow()
    email = normalize_email(email)[:254]
    user = session.scalar(select(User).where(User.email == email))
    if user is None or not user.is_active:
        _refuse(
            session, "auth.sign_in_failed", email,
            {"reason": "no active account", "method": method},
            f"{email or 'This account'} has no active Lockstep account. Ask an admin to add you.",
        )
    before = {"last_login_at": user.last_login_at}
    user.last_login_at = now
    session.flush()
    audit.append(session, user.email, "auth.sign_in", "user", user.email,
                 before=before, after={"method": method, "last_login_at": now})
    return actor_for(user)


def sign_out(*, session: Session, actor: Actor, now: datetime | None = None) -> int:
    """End every server-side session of the actor and audit it; returns how many ended."""
    ended = 0
    if actor.user_id is not None:
        ended = revoke_sessions_for_user(session=session, user_id=actor.user_id, reason="signed out", now=now)
    audit.append(session, actor, "auth.sign_out", "user", actor.email, after={"sessions_ended": ended})
    return ended
