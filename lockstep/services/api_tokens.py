"""API tokens: bearer tokens for the ingest API, made and revoked by admins from the command line.

A token is shown once, when it is made; the database keeps only its sha256 (as for share
links), so a copy of the database cannot be turned back into working tokens. A token acts
as an Actor of its role, named `token:NAME` in the audit log and on the events it records.
An account manager's token is bound to one account-manager user (`user_email`) and acts as
that manager, so it sees exactly the tenants the manager sees on the pages; it stops working
when that user is deactivated or no longer an account manager. Every write is audited.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime

import pandas as pd
from sqlalchemy import case, select
from sqlalchemy.orm import Session

from lockstep.clock import utcnow
from lockstep.errors import NotFoundError, ValidationError
from lockstep.models import ROLES, ApiToken, User
from lockstep.permissions import Actor, require
from lockstep.services import audit
from lockstep.services.users import normalize_email

# "lst_" makes a leaked token recognisable (secret scanners, logs); then 32 random bytes
# (256 bits) as 43 URL-safe characters.
TOKEN_PREFIX = "lst_"
TOKEN_BYTES = 32
_TOKEN_SHAPE = re.compile(r"lst_[A-Za-z0-9_-]{43}")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
MANAGER_ROLE = "account_manager"

TOKEN_COLUMNS = [
    "name",
    "role",
    "user_email",
    "created_at",
    "created_by",
    "revoked_at",
    "revoked_by",
    "status",
]


def token_hash(token: str) -> str:
    """The sha256 hex digest under which a token is stored."""
    return hashlib.sha256(token.encode()).hexdigest()


def _describe(token: ApiToken) -> dict:
    return {
        "name": token.name,
        "role": token.role,
        "user": token.user_email,
        "created_at": token.created_at,
        "revoked_at": token.revoked_at,
    }


def _check_binding(session: Session, role: str, user_email: str | None) -> str | None:
    """The user a token of `role` acts as: an active account manager for that role, nobody otherwise."""
    if role != MANAGER_ROLE:
        if user_email:
            raise ValidationError(
                f"--user binds an account manager's token to that manager; a {role} token acts as itself"
            )
        return None
    if not user_email:
        raise ValidationError(
            "an account manager's token needs --user EMAIL: the manager whose tenants it may see"
        )
    user = session.scalar(select(User).where(User.email == normalize_email(user_email)))
    if user is None:
        raise NotFoundError(f"no user with e-mail {user_email!r}")
    if user.role != MANAGER_ROLE or not user.is_active:
        raise ValidationError(
            f"{user.email} is {'inactive' if not user.is_active else 'a ' + user.role}; "
            "an account manager's token must name an active account manager"
        )
    return user.email


def add_api_token(
    *, session: Session, actor: Actor, name: str, role: str, user_email: str | None = None
) -> tuple[ApiToken, str]:
    """Make a token; return the row and the token itself (shown once, never stored)."""
    require(actor, "token.manage")
    name = (name or "").strip()
    if not _NAME.fullmatch(name):
        raise ValidationError(
            f"token name {name!r}: use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    if role not in ROLES:
        raise ValidationError(f"role {role!r} does not exist (roles: {', '.join(ROLES)})")
    bound = _check_binding(session, role, user_email)
    if session.scalar(select(ApiToken.id).where(ApiToken.name == name)) is not None:
        # Names stay taken after a revoke, so the audit trail's "token:NAME" means one token.
        raise ValidationError(
            f"a token named {name!r} exists already (revoked ones too); choose another name"
        )
    token = TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)
    row = ApiToken(
        name=name,
        token_hash=token_hash(token),
        role=role,
        user_email=bound,
        created_at=utcnow(),
        created_by=actor.email,
    )
    session.add(row)
    session.flush()
    audit.append(session, actor, "token.add", "api_token", name, after=_describe(row))
    return row, token


def revoke_api_token(*, session: Session, actor: Actor, name: str, now: datetime | None = None) -> ApiToken:
    """Revoke a token at once (revoking a revoked token changes nothing); return it."""
    require(actor, "token.manage")
    row = session.scalar(select(ApiToken).where(ApiToken.name == name).with_for_update())
    if row is None:
        raise NotFoundError(f"no API token named {name!r} (see `python -m lockstep token list`)")
    if row.revoked_at is not None:
        return row
    before = _describe(row)
    row.revoked_at, row.revoked_by = now or utcnow(), actor.email
    session.flush()
    audit.append(session, actor, "token.revoke", "api_token", name, before=before, after=_describe(row))
    return row


def list_api_tokens(*, session: Session, actor: Actor) -> pd.DataFrame:
    """Every token, newest first (never the token or its hash).

    Columns: name, role, user_email, created_at, created_by, revoked_at, revoked_by,
    status ('active' | 'revoked').
    """
    require(actor, "token.manage")
    status = case((ApiToken.revoked_at.is_not(None), "revoked"), else_="active")
    rows = session.execute(
        select(
            ApiToken.name,
            ApiToken.role,
            ApiToken.user_email,
            ApiToken.created_at,
            ApiToken.created_by,
            ApiToken.revoked_at,
            ApiToken.revoked_by,
            status,
        ).order_by(ApiToken.created_at.desc(), ApiToken.id.desc())
    ).all()
    return pd.DataFrame([tuple(r) for r in rows], columns=TOKEN_COLUMNS)


@dataclass(frozen=True)
class TokenHolder:
    """Who a live token speaks for: the Actor the services see, and the token's id and name."""

    actor: Actor
    token_id: int
    name: str


def token_actor(*, session: Session, token: str | None) -> TokenHolder | None:
    """The holder of a live token; None for a missing, garbled, unknown or revoked token.

    An account manager's token also dies with its manager: an inactive user, or one whose
    role changed, gets None, as a revoked token does.
    """
    # Shape first: junk never reaches the database; the lookup is by hash, so the
    # comparison itself leaks nothing about stored tokens.
    if not token or not _TOKEN_SHAPE.fullmatch(token):
        return None
    row = session.execute(
        select(ApiToken, User)
        .outerjoin(User, User.email == ApiToken.user_email)
        .where(ApiToken.token_hash == token_hash(token), ApiToken.revoked_at.is_(None))
    ).first()
    if row is None:
        return None
    tok, user = row
    if tok.role == MANAGER_ROLE:
        if user is None or not user.is_active or user.role != MANAGER_ROLE:
            return None
        return TokenHolder(Actor(email=user.email, role=MANAGER_ROLE, user_id=user.id), tok.id, tok.name)
    return TokenHolder(Actor(email=f"token:{tok.name}", role=tok.role), tok.id, tok.name)
