"""Server-side sessions: what a browser's cookie signs in, for how long, and how it ends.

Signing in opens a session and hands the browser a one-time code (256 random bits, valid
for HANDOFF seconds). The browser trades it, once, at the session route for the session's
cookie token: another 256 random bits, which the database never sees; it keeps only the
SHA-256 of the code and then of the token. So a copy of the database signs nobody in, and
the code that passes through the address bar is useless after its one use.

A session ends when the user signs out, after `session_idle_hours` without a page run,
`session_days` after sign-in, or when an admin (or the user) changes the password, the
role, or deactivates the user: `revoke_sessions_for_user` ends every session of that user,
in the same transaction as the change.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from lockstep.clock import utcnow
from lockstep.config import get_settings
from lockstep.models import User, UserSession
from lockstep.permissions import Actor

HANDOFF = timedelta(seconds=60)
# last_seen_at is written at most this often, so page runs do not each cost a write.
TOUCH_EVERY = timedelta(minutes=1)


def token_hash(token: str) -> str:
    """The stored form of a session token or hand-off code: hex SHA-256."""
    return hashlib.sha256(token.encode()).hexdigest()


def start_session(
    *, session: Session, actor: Actor, method: str, address: str | None = None, now: datetime | None = None
) -> str:
    """Open a session for an actor who just proved who they are; return the one-time hand-off code."""
    if actor.user_id is None:
        raise ValueError("a session belongs to a user row; this actor has no user id")
    now = now or utcnow()
    code = secrets.token_urlsafe(32)
    session.add(
        UserSession(
            token_hash=token_hash(code),
            user_id=actor.user_id,
            method=method[:16],
            client_address=address[:64] if address else None,
            created_at=now,
            last_seen_at=now,
            expires_at=now + timedelta(days=get_settings().session_days),
        )
    )
    session.flush()
    return code


@dataclass(frozen=True)
class Activated:
    """A session's cookie token, shown once to the browser, and when the cookie should expire."""

    token: str
    expires_at: datetime


def activate_session(*, session: Session, code: str, now: datetime | None = None) -> Activated | None:
    """Trade a hand-off code, once and within HANDOFF, for the session's cookie token; None otherwise."""
    now = now or utcnow()
    if not code or len(code) > 128:
        return None
    row = session.scalar(
        select(UserSession).where(UserSession.token_hash == token_hash(code)).with_for_update()
    )
    if row is None or row.activated_at is not None or row.ended_at is not None:
        return None
    if now > row.created_at + HANDOFF:
        return None
    token = secrets.token_urlsafe(32)
    row.token_hash, row.activated_at, row.last_seen_at = token_hash(token), now, now
    session.flush()
    return Activated(token=token, expires_at=row.expires_at)


@dataclass(frozen=True)
class SessionCheck:
    """What a cookie token is worth now: the actor, or why not; and whether last-seen needs a write."""

    actor: Actor | None
    session_id: int | None = None
    problem: str | None = None
    stale: bool = False


def check_session(*, session: Session, token: str, now: datetime | None = None) -> SessionCheck:
    """The actor a cookie token signs in now (current role), or the reason it does not. Reads only."""
    now = now or utcnow()
    if not token or len(token) > 128:
        return SessionCheck(None, problem="unknown")
    found = session.execute(
        select(UserSession, User).join(User, User.id == UserSession.user_id)
        .where(UserSession.token_hash == token_hash(token))
    ).first()
    if found is None:
        return SessionCheck(None, problem="unknown")
    row, user = found
    idle = timedelta(hours=get_settings().session_idle_hours)
    if row.activated_at is None:
        problem = "unknown"
    elif row.ended_at is not None:
        problem = "ended"
    elif now >= row.expires_at:
        problem = "expired"
    elif now - row.last_seen_at > idle:
        problem = "idle"
    elif not user.is_active:
        problem = "inactive"
    else:
        actor = Actor(email=user.email, role=user.role, user_id=user.id)
        return SessionCheck(actor, row.id, stale=now - row.last_seen_at >= TOUCH_EVERY)
    return SessionCheck(None, row.id, problem=problem)


def touch_session(*, session: Session, session_id: int, now: datetime | None = None) -> None:
    """Record that the session was used now (never moves last-seen backwards, never revives an ended one)."""
    now = now or utcnow()
    session.execute(
        update(UserSession)
        .where(UserSession.id == session_id, UserSession.ended_at.is_(None), UserSession.last_seen_at < now)
        .values(last_seen_at=now)
    )


def end_expired_session(
    *, session: Session, session_id: int, reason: str, now: datetime | None = None
) -> None:
    """Mark a session that outlived its idle timeout or lifetime as ended, with the reason."""
    session.execute(
        update(UserSession)
        .where(UserSession.id == session_id, UserSession.ended_at.is_(None))
        .values(ended_at=now or utcnow(), ended_reason=reason[:32])
    )


def revoke_sessions_for_user(
    *, session: Session, user_id: int, reason: str, now: datetime | None = None
) -> int:
    """End every open session of a user (in the caller's transaction); the number ended."""
    result = session.execute(
        update(UserSession)
        .where(UserSession.user_id == user_id, UserSession.ended_at.is_(None))
        .values(ended_at=now or utcnow(), ended_reason=reason[:32])
    )
    return result.rowcount or 0


def open_sessions(*, session: Session, user_id: int) -> list[UserSession]:
    """The user's sessions that have not ended (activated or still waiting for the browser)."""
    return list(
        session.scalars(
            select(UserSession)
            .where(UserSession.user_id == user_id, UserSession.ended_at.is_(None))
            .order_by(UserSession.id)
        )
    )
