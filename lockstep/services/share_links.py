"""Customer share links: a read-only link to one tenant's status, without an account.

The token is shown once, when the link is made; the database keeps only its sha256, so
a copy of the database cannot be turned back into working links. Links expire, can be
revoked, and an account manager can make, see and revoke links for their own tenants
only (an admin for any tenant). Every write is audited.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import datetime, timedelta

import pandas as pd
from sqlalchemy import case, select
from sqlalchemy.orm import Session

from lockstep.clock import utcnow
from lockstep.config import get_settings
from lockstep.errors import NotFoundError, ValidationError
from lockstep.models import ShareLink, Tenant
from lockstep.permissions import Actor, require
from lockstep.queries.customers import CustomerStatus, customer_status
from lockstep.queries.scope import scoped
from lockstep.services import audit

MAX_DAYS = 90
# token_urlsafe(32): 32 random bytes (256 bits) as 43 URL-safe characters.
TOKEN_BYTES = 32
_TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_-]{20,100}")

LINK_COLUMNS = [
    "id", "tenant_external_id", "tenant_name", "created_by", "created_at", "expires_at",
    "revoked_at", "revoked_by", "status",
]


def token_hash(token: str) -> str:
    """The sha256 hex digest under which a token is stored."""
    return hashlib.sha256(token.encode()).hexdigest()


def _own_tenant(session: Session, actor: Actor, external_id: str) -> Tenant:
    # Another manager's tenant reads as "no such tenant": its existence is not ours to tell.
    tenant = session.scalar(
        scoped(select(Tenant).where(Tenant.external_id == external_id), actor, Tenant.account_manager)
    )
    if tenant is None:
        raise NotFoundError(f"no tenant '{external_id}' among the tenants you manage")
    return tenant


def _describe(link: ShareLink, tenant_external_id: str) -> dict:
    return {
        "tenant": tenant_external_id,
        "created_by": link.created_by,
        "created_at": link.created_at,
        "expires_at": link.expires_at,
        "revoked_at": link.revoked_at,
        "revoked_by": link.revoked_by,
    }


def create_share_link(
    *,
    session: Session,
    actor: Actor,
    tenant_external_id: str,
    days: int | None = None,
    now: datetime | None = None,
) -> tuple[ShareLink, str]:
    """Make a link to one tenant's status; return the link and its token (shown once, never stored)."""
    require(actor, "share.create")
    days = get_settings().share_link_days if days is None else days
    if not 1 <= days <= MAX_DAYS:
        raise ValidationError(f"a share link lasts 1 to {MAX_DAYS} days, not {days}")
    tenant = _own_tenant(session, actor, tenant_external_id)
    now = now or utcnow()
    token = secrets.token_urlsafe(TOKEN_BYTES)
    link = ShareLink(
        token_hash=token_hash(token),
        tenant_id=tenant.id,
        created_by=actor.email,
        created_at=now,
        expires_at=now + timedelta(days=days),
    )
    session.add(link)
    session.flush()
    audit.append(session, actor, "share.create", "share_link", link.id,
                 after=_describe(link, tenant.external_id))
    return link, token


def revoke_share_link(
    *, session: Session, actor: Actor, link_id: int, now: datetime | None = None
) -> ShareLink:
    """Revoke a link at once (revoking a revoked link changes nothing); return it."""
    require(actor, "share.revoke")
    row = session.execute(
        scoped(
            select(ShareLink, Tenant.external_id)
            .join(Tenant, Tenant.id == ShareLink.tenant_id)
            .where(ShareLink.id == link_id),
            actor,
            Tenant.account_manager,
        ).with_for_update(of=ShareLink)
    ).first()
    if row is None:
        raise NotFoundError(f"no share link {link_id} for the tenants you manage")
    link, external_id = row
    if link.revoked_at is not None:
        return link
    before = _describe(link, external_id)
    link.revoked_at, link.revoked_by = now or utcnow(), actor.email
    session.flush()
    audit.append(session, actor, "share.revoke", "share_link", link.id,
                 before=before, after=_describe(link, external_id))
    return link


def list_share_links(
    *,
    session: Session,
    actor: Actor,
    tenant_external_id: str | None = None,
    now: datetime | None = None,
    limit: int = 200,
) -> pd.DataFrame:
    """Share links the actor may manage, newest first.

    Columns: id, tenant_external_id, tenant_name, created_by, created_at, expires_at,
    revoked_at, revoked_by, status ('active' | 'expired' | 'revoked').
    """
    require(actor, "share.create")
    now = now or utcnow()
    status = case(
        (ShareLink.revoked_at.is_not(None), "revoked"),
        (ShareLink.expires_at <= now, "expired"),
        else_="active",
    )
    stmt = (
        select(
            ShareLink.id,
            Tenant.external_id.label("tenant_external_id"),
            Tenant.name.label("tenant_name"),
            ShareLink.created_by,
            ShareLink.created_at,
            ShareLink.expires_at,
            ShareLink.revoked_at,
            ShareLink.revoked_by,
            status.label("status"),
        )
        .join(Tenant, Tenant.id == ShareLink.tenant_id)
        .order_by(ShareLink.created_at.desc(), ShareLink.id.desc())
        .limit(limit)
    )
    if tenant_external_id is not None:
        stmt = stmt.where(Tenant.external_id == tenant_external_id)
    rows = session.execute(scoped(stmt, actor, Tenant.account_manager)).all()
    return pd.DataFrame([tuple(r) for r in rows], columns=LINK_COLUMNS)


def resolve_share_token(*, session: Session, token: str | None, now: datetime | None = None) -> int | None:
    """The tenant id a live token opens; None for an unknown, expired, revoked or garbled token."""
    # Shape first: junk never reaches the database, and the lookup is by hash, so the
    # comparison itself leaks nothing about stored tokens.
    if not token or not _TOKEN_SHAPE.fullmatch(token):
        return None
    now = now or utcnow()
    return session.scalar(
        select(ShareLink.tenant_id).where(
            ShareLink.token_hash == token_hash(token),
            ShareLink.revoked_at.is_(None),
            ShareLink.expires_at > now,
        )
    )


# Whoever opens a share link reads as this: a role that may write nothing, looking at the
# one tenant the token names (the tenant id comes from the token, never from the visitor).
SHARE_VIEWER = Actor(email="share-link", role="executive")


def shared_tenant_status(
    *, session: Session, token: str | None, now: datetime | None = None
) -> CustomerStatus | None:
    """The customer view a live token opens (a CustomerStatus), else None."""
    tenant_id = resolve_share_token(session=session, token=token, now=now)
    if tenant_id is None:
        return None
    external_id = session.scalar(select(Tenant.external_id).where(Tenant.id == tenant_id))
    return customer_status(session=session, actor=SHARE_VIEWER, tenant_external_id=external_id)
