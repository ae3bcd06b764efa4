"""Sign-in and sign-out: local passwords (argon2) with throttling and lock-out, or a trusted identity.

Throttling lives in the database, not in a sleep: after the n-th failure in a row the
account's `locked_until` is set 2^(n-1) seconds ahead (1, 2, 4, 8 s), and from the
MAX_FAILURES-th failure on, LOCKOUT ahead. Until then every attempt is refused without
looking at the password, so parallel guesses gain nothing and no request waits. A
success clears the count. Unknown e-mail, wrong password, a locked or inactive account:
all get the same message, so the form does not tell which e-mails have accounts.

Every attempt is audited (auth.sign_in, auth.sign_in_failed, auth.locked; never the
password). A failure is committed before SignInFailed is raised: the caller's rollback
on the exception must not erase the attempt, or the lock-out would never count.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import lru_cache

from sqlalchemy import select
from sqlalchemy.orm import Session

from lockstep.clock import utcnow
from lockstep.errors import LockstepError
from lockstep.models import User
from lockstep.permissions import Actor
from lockstep.services import audit
from lockstep.services.users import hash_password, normalize_email, verify_password

MAX_FAILURES = 5
LOCKOUT = timedelta(minutes=15)
MAX_DELAY = timedelta(seconds=60)
ANONYMOUS = "anonymous"

SIGN_IN_FAILED = (
    f"Wrong e-mail or password. After {MAX_FAILURES} failed attempts in a row an account "
    f"is locked for {LOCKOUT.seconds // 60} minutes."
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


def authenticate(*, session: Session, email: str, password: str, now: datetime | None = None) -> Actor:
    """Check an e-mail and password; return the Actor, or raise SignInFailed (the attempt is kept)."""
    now = now or utcnow()
    email = normalize_email(email)[:254]
    # The row lock makes concurrent attempts on one account take turns, so each sees the last one's count.
    user = session.scalar(select(User).where(User.email == email).with_for_update())
    if user is None:
        # Spend the same argon2 time as a real check, so response time does not reveal accounts.
        verify_password(_dummy_hash(), password or "")
        _refuse(session, "auth.sign_in_failed", email, {"reason": "unknown e-mail"})
    if user.locked_until is not None and now < user.locked_until:
        verify_password(_dummy_hash(), password or "")
        _refuse(session, "auth.locked", email, {
            "reason": "locked", "failures": user.failed_logins, "locked_until": user.locked_until,
        })
    if not verify_password(user.password_hash, password or "") or not user.is_active:
        # An inactive account is checked after the password, so it costs the same time.
        reason = "inactive" if user.is_active is False else "wrong password"
        if not user.password_hash:
            reason = "no password (single sign-on only)"
        user.failed_logins = (user.failed_logins or 0) + 1
        user.locked_until = now + delay_after(user.failed_logins)
        session.flush()
        _refuse(session, "auth.sign_in_failed", email, {
            "reason": reason, "failures": user.failed_logins, "locked_until": user.locked_until,
        })
    before = {"failures": user.failed_logins, "last_login_at": user.last_login_at}
    user.failed_logins, user.locked_until, user.last_login_at = 0, None, now
    session.flush()
    audit.append(session, user.email, "auth.sign_in", "user", user.email,
                 before=before, after={"method": "password", "last_login_at": now})
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


def sign_out(*, session: Session, actor: Actor) -> None:
    """Record that the actor signed out (the caller forgets the session)."""
    audit.append(session, actor, "auth.sign_out", "user", actor.email)


def still_valid(*, session: Session, actor: Actor) -> Actor | None:
    """The actor as the database sees them now: current role, or None when deactivated or gone."""
    if actor.user_id is None:
        return actor
    user = session.get(User, actor.user_id)
    if user is None or not user.is_active:
        return None
    return actor_for(user)
