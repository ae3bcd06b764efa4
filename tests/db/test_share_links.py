"""Share links: made for own tenants only, stored as a hash, expire, revoke, audited."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select

from lockstep.db import read_session, write_session
from lockstep.errors import NotFoundError, PermissionDenied, ValidationError
from lockstep.models import AuditEntry, ShareLink, Tenant, Tier
from lockstep.permissions import Actor
from lockstep.services import audit
from lockstep.services.share_links import (
    create_share_link,
    list_share_links,
    resolve_share_token,
    revoke_share_link,
    token_hash,
)

NOW = datetime(2020, 5, 1, 12, 0)
ADMIN = Actor("admin@x.example", "admin")
DANA = Actor("dana@x.example", "account_manager")
OMAR = Actor("omar@x.example", "account_manager")
LEAD = Actor("lead@x.example", "security_lead")
EXEC = Actor("exec@x.example", "executive")


@pytest.fixture
def tenants(engine):
    """Two tenants of Dana's, one of Omar's."""
    with write_session(engine) as s:
        s.add(Tier(code="pro", name="Pro", paid=True))
        s.flush()
        for ext, manager in (("T-1", DANA.email), ("T-2", DANA.email), ("T-3", OMAR.email)):
            s.add(Tenant(external_id=ext, name=f"<b>{ext}</b>", tier="pro", region="us", seats=10,
                         account_manager=manager, created_at=NOW, updated_at=NOW))
    return engine


def _create(engine, actor, ext, **kw):
    with write_session(engine) as s:
        link, token = create_share_link(session=s, actor=actor, tenant_external_id=ext, now=NOW, **kw)
    return link, token


def _resolve(engine, token, now=NOW):
    with read_session(engine) as s:
        return resolve_share_token(session=s, token=token, now=now)


def _tenant_id(engine, ext):
    with read_session(engine) as s:
        return s.scalar(select(Tenant.id).where(Tenant.external_id == ext))


def test_a_link_opens_its_tenant_and_only_the_hash_is_stored(tenants):
    link, token = _create(tenants, DANA, "T-1")
    assert len(token) >= 43  # 32 random bytes, URL-safe
    assert _resolve(tenants, token) == _tenant_id(tenants, "T-1")
    with read_session(tenants) as s:
        stored = s.get(ShareLink, link.id)
        assert stored.token_hash == token_hash(token) != token
        assert token not in repr([getattr(stored, c.key) for c in ShareLink.__table__.columns])
        assert stored.expires_at == NOW + timedelta(days=14)
        assert stored.created_by == DANA.email


def test_tokens_are_unique(tenants):
    tokens = {_create(tenants, DANA, "T-1")[1] for _ in range(5)}
    assert len(tokens) == 5


def test_a_link_expires(tenants):
    _, token = _create(tenants, DANA, "T-1", days=2)
    assert _resolve(tenants, token, now=NOW + timedelta(days=2) - timedelta(seconds=1)) is not None
    assert _resolve(tenants, token, now=NOW + timedelta(days=2)) is None


@pytest.mark.parametrize("days", [0, -1, 91])
def test_a_lifetime_outside_the_limits_is_refused(tenants, days):
    with pytest.raises(ValidationError, match="1 to 90 days"):
        _create(tenants, DANA, "T-1", days=days)


def test_a_revoked_link_stops_working_at_once_and_revoking_twice_is_harmless(tenants):
    link, token = _create(tenants, DANA, "T-1")
    with write_session(tenants) as s:
        revoked = revoke_share_link(session=s, actor=DANA, link_id=link.id, now=NOW + timedelta(hours=1))
    assert revoked.revoked_by == DANA.email
    assert _resolve(tenants, token) is None
    with write_session(tenants) as s:
        again = revoke_share_link(session=s, actor=ADMIN, link_id=link.id)
    assert again.revoked_by == DANA.email and again.revoked_at == NOW + timedelta(hours=1)


@pytest.mark.parametrize(
    "token",
    ["", None, "x", "not a token at all!", "A" * 43, "'; DROP TABLE share_links; --", "é" * 43, "A" * 5000],
)
def test_unknown_or_garbled_tokens_open_nothing(tenants, token):
    _create(tenants, DANA, "T-1")
    assert _resolve(tenants, token) is None


def test_an_altered_token_opens_nothing(tenants):
    _, token = _create(tenants, DANA, "T-1")
    altered = token[:-1] + ("A" if token[-1] != "A" else "B")
    assert _resolve(tenants, altered) is None
    assert _resolve(tenants, token + "x") is None


def test_a_manager_cannot_link_revoke_or_list_another_managers_tenant(tenants):
    with pytest.raises(NotFoundError):
        _create(tenants, DANA, "T-3")
    omar_link, _ = _create(tenants, OMAR, "T-3")
    with write_session(tenants) as s, pytest.raises(NotFoundError):
        revoke_share_link(session=s, actor=DANA, link_id=omar_link.id)
    with read_session(tenants) as s:
        assert list_share_links(session=s, actor=DANA).empty
        assert list_share_links(session=s, actor=DANA, tenant_external_id="T-3").empty
        assert list(list_share_links(session=s, actor=OMAR)["tenant_external_id"]) == ["T-3"]
    # The same unknown-tenant answer for a tenant that does not exist at all.
    with pytest.raises(NotFoundError):
        _create(tenants, DANA, "T-404")


def test_an_admin_may_link_and_revoke_any_tenant(tenants):
    link, token = _create(tenants, ADMIN, "T-3")
    assert _resolve(tenants, token) == _tenant_id(tenants, "T-3")
    dana_link, _ = _create(tenants, DANA, "T-1")
    with write_session(tenants) as s:
        revoke_share_link(session=s, actor=ADMIN, link_id=dana_link.id)
    with read_session(tenants) as s:
        df = list_share_links(session=s, actor=ADMIN, now=NOW)
    assert sorted(df["tenant_external_id"]) == ["T-1", "T-3"]
    assert dict(zip(df["id"], df["status"], strict=True)) == {link.id: "active", dana_link.id: "revoked"}


@pytest.mark.parametrize("actor", [LEAD, EXEC], ids=lambda a: a.role)
def test_other_roles_may_not_make_revoke_or_list_links(tenants, actor):
    link, _ = _create(tenants, ADMIN, "T-1")
    with write_session(tenants) as s:
        with pytest.raises(PermissionDenied):
            create_share_link(session=s, actor=actor, tenant_external_id="T-1")
        with pytest.raises(PermissionDenied):
            revoke_share_link(session=s, actor=actor, link_id=link.id)
        with pytest.raises(PermissionDenied):
            list_share_links(session=s, actor=actor)


def test_list_shows_who_made_it_when_it_expires_and_its_status(tenants):
    a, _ = _create(tenants, DANA, "T-1", days=1)
    b, _ = _create(tenants, DANA, "T-2")
    c, _ = _create(tenants, DANA, "T-2")
    with write_session(tenants) as s:
        revoke_share_link(session=s, actor=DANA, link_id=c.id, now=NOW)
    with read_session(tenants) as s:
        df = list_share_links(session=s, actor=DANA, now=NOW + timedelta(days=1))
        only_t2 = list_share_links(session=s, actor=DANA, tenant_external_id="T-2", now=NOW)
    status = dict(zip(df["id"], df["status"], strict=True))
    assert status == {a.id: "expired", b.id: "active", c.id: "revoked"}
    assert set(df["created_by"]) == {DANA.email}
    assert set(only_t2["id"]) == {b.id, c.id}
    assert set(df.loc[df["id"] == c.id, "revoked_by"]) == {DANA.email}


def test_every_write_is_audited_without_the_token(tenants):
    link, token = _create(tenants, DANA, "T-1")
    with write_session(tenants) as s:
        revoke_share_link(session=s, actor=DANA, link_id=link.id)
    with read_session(tenants) as s:
        entries = s.scalars(select(AuditEntry).where(AuditEntry.entity_type == "share_link")
                            .order_by(AuditEntry.id)).all()
        assert [(e.action, e.actor, e.entity_id) for e in entries] == [
            ("share.create", DANA.email, str(link.id)),
            ("share.revoke", DANA.email, str(link.id)),
        ]
        assert entries[0].after["tenant"] == "T-1"
        assert entries[1].before["revoked_at"] is None and entries[1].after["revoked_by"] == DANA.email
        for e in entries:
            assert token not in str(e.before) + str(e.after)
            assert token_hash(token) not in str(e.before) + str(e.after)
        assert audit.verify(s).ok


def test_a_refused_write_leaves_no_trace(tenants):
    with read_session(tenants) as s:
        before = s.scalar(select(func.count()).select_from(AuditEntry))
    with pytest.raises(NotFoundError):
        _create(tenants, DANA, "T-3")
    with read_session(tenants) as s:
        assert s.scalar(select(func.count()).select_from(AuditEntry)) == before
        assert s.scalar(select(func.count()).select_from(ShareLink)) == 0
