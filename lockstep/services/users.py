"""Users and roles: add, change role, deactivate, reactivate, unlock, set and check passwords (argon2).

A role change, a deactivation and a new password end every server-side session of that
user in the same transaction (revoke_sessions_for_user), so nobody keeps acting on the old
terms from a browser that was already signed in. The last active admin can be neither
demoted nor deactivated; the admin rows are locked while that is decided, so two admins
demoting each other at once cannot both succeed.
"""

from __future__ import annotations

import re

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from lockstep.clock import utcnow
from lockstep.errors import NotFoundError, ValidationError
from lockstep.models import ROLES, User
from lockstep.permissions import Actor, require
from lockstep.services import audit
from lockstep.services.sessions import revoke_sessions_for_user

MIN_PASSWORD_LENGTH = 10
# Deliberately loose: one @, no spaces, a dot in the domain. Deliverability is not our job.
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")
_hasher = PasswordHasher()


def normalize_email(email: str) -> str:
    """The stored form of an e-mail address: trimmed and lower-case."""
    return (email or "").strip().lower()


def _check_email(email: str) -> str:
    normal = normalize_email(email)
    if len(normal) > 254 or not _EMAIL.match(normal):
        raise ValidationError(
            f"{email!r} is not an e-mail address (expected something like name@example.com)"
        )
    return normal


def _check_role(role: str) -> str:
    if role not in ROLES:
        raise ValidationError(f"role {role!r} does not exist (roles: {', '.join(ROLES)})")
    return role


def _check_password(password: str) -> None:
    if password is None or len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationError(f"the password must be at least {MIN_PASSWORD_LENGTH} characters long")


def hash_password(password: str) -> str:
    """An argon2id hash of `password` after checking the password policy."""
    _check_password(password)
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """True when `password` matches the stored argon2 hash; False for any mismatch or bad hash."""
    if not password_hash or password is None:
        return False
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def get_user(*, session: Session, email: str) -> User | None:
    """The user with this e-mail address (any case), or None."""
    return session.scalar(select(User).where(User.email == normalize_email(email)))


def _existing(session: Session, email: str) -> User:
    user = get_user(session=session, email=email)
    if user is None:
        raise NotFoundError(f"no user with e-mail {email!r}")
    return user


def _active_admins(session: Session) -> int:
    # FOR UPDATE on the admin rows (PostgreSQL; SQLite's write session holds the whole
    # database): a concurrent demotion waits, then counts what this one left.
    ids = session.scalars(
        select(User.id).where(User.role == "admin", User.is_active.is_(True)).with_for_update()
    ).all()
    return len(ids)


def _end_sessions(session: Session, user: User, reason: str) -> int:
    return revoke_sessions_for_user(session=session, user_id=user.id, reason=reason, now=utcnow())


def add_user(
    *, session: Session, actor: Actor, email: str, role: str, password: str, display_name: str = ""
) -> User:
    """Create a user with an argon2-hashed password; ValidationError names a bad value."""
    require(actor, "user.manage")
    _check_email(email)
    _check_role(role)
    return add_user_with_hash(
        session=session,
        actor=actor,
        email=email,
        role=role,
        password_hash=hash_password(password),
        display_name=display_name,
    )


def add_user_with_hash(
    *, session: Session, actor: Actor, email: str, role: str, password_hash: str, display_name: str = ""
) -> User:
    """Create a user from a hash made by hash_password (bulk loads hash a shared password once)."""
    require(actor, "user.manage")
    email = _check_email(email)
    role = _check_role(role)
    if not password_hash.startswith("$argon2"):
        raise ValidationError("the password hash is not an argon2 hash made by hash_password")
    if get_user(session=session, email=email) is not None:
        raise ValidationError(f"a user with e-mail {email!r} already exists")
    user = User(
        email=email,
        display_name=(display_name or "").strip(),
        role=role,
        password_hash=password_hash,
        is_active=True,
        failed_logins=0,
        created_at=utcnow(),
    )
    session.add(user)
    session.flush()
    # Never the hash: the audit log is readable by admins and exported.
    audit.append(session, actor, "user.add", "user", email, after={"email": email, "role": role})
    return user


def set_role(*, session: Session, actor: Actor, email: str, role: str) -> User:
    """Change a user's role; refuses to leave the system without an active admin."""
    require(actor, "user.manage")
    role = _check_role(role)
    user = _existing(session, email)
    if user.role == role:
        return user
    if user.role == "admin" and user.is_active and _active_admins(session) <= 1:
        raise ValidationError(f"{user.email} is the last active admin; make someone else admin first")
    before = user.role
    user.role = role
    session.flush()
    ended = _end_sessions(session, user, "role changed")
    audit.append(
        session, actor, "user.set_role", "user", user.email,
        before={"role": before}, after={"role": role, "sessions_ended": ended},
    )
    return user


def deactivate_user(*, session: Session, actor: Actor, email: str) -> User:
    """Stop a user from signing in (the row stays, so the audit trail keeps its author)."""
    require(actor, "user.manage")
    user = _existing(session, email)
    if not user.is_active:
        return user
    if user.role == "admin" and _active_admins(session) <= 1:
        raise ValidationError(f"{user.email} is the last active admin; make someone else admin first")
    user.is_active = False
    session.flush()
    ended = _end_sessions(session, user, "deactivated")
    audit.append(
        session,
        actor,
        "user.deactivate",
        "user",
        user.email,
        before={"active": True},
        after={"active": False, "sessions_ended": ended},
    )
    return user


def reactivate_user(*, session: Session, actor: Actor, email: str) -> User:
    """Let a deactivated user sign in again (with the password and role they had)."""
    require(actor, "user.manage")
    user = _existing(session, email)
    if user.is_active:
        return user
    user.is_active = True
    session.flush()
    audit.append(
        session, actor, "user.reactivate", "user", user.email,
        before={"active": False}, after={"active": True},
    )
    return user


def unlock_user(*, session: Session, actor: Actor, email: str) -> User:
    """Clear a user's failed sign-ins and lock-out, so the next right password gets in at once."""
    require(actor, "user.manage")
    user = _existing(session, email)
    before = {"failures": user.failed_logins or 0, "locked_until": user.locked_until}
    user.failed_logins, user.locked_until = 0, None
    session.flush()
    audit.append(
        session, actor, "user.unlock", "user", user.email,
        before=before, after={"failures": 0, "locked_until": None},
    )
    return user


def set_password(*, session: Session, actor: Actor, email: str, password: str) -> User:
    """Replace a user's password (admins, or the user themself) and clear any lockout."""
    if normalize_email(actor.email) != normalize_email(email):
        require(actor, "user.manage")
    user = _existing(session, email)
    user.password_hash = hash_password(password)
    user.failed_logins = 0
    user.locked_until = None
    session.flush()
    ended = _end_sessions(session, user, "password changed")
    audit.append(
        session, actor, "user.set_password", "user", user.email,
        after={"password": "changed", "sessions_ended": ended},
    )
    return user


__all__ = [
    "MIN_PASSWORD_LENGTH",
    "add_user",
    "add_user_with_hash",
    "deactivate_user",
    "get_user",
    "hash_password",
    "normalize_email",
    "reactivate_user",
    "set_password",
    "set_role",
    "unlock_user",
    "verify_password",
]
