"""Notes on tenants: an account manager keeps them on their own tenants; every one is audited."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert
from sqlalchemy.orm import Session

from lockstep.clock import utcnow
from lockstep.errors import ValidationError
from lockstep.models import TenantNote
from lockstep.permissions import Actor, require
from lockstep.queries.rollout import scoped_tenant
from lockstep.services import audit

MAX_NOTE_CHARS = 2000


@dataclass(frozen=True)
class NoteAdded:
    """What add_note did: the new note's id, its tenant and when."""

    note_id: int
    tenant_external_id: str
    created_at: datetime


def add_note(*, session: Session, actor: Actor, tenant_external_id: str, body: str) -> NoteAdded:
    """Add a note to a tenant (an account manager: only their own tenants), audited."""
    require(actor, "note.add")
    text = body.strip()
    if not text:
        raise ValidationError("the note is empty; write what you want to keep")
    if len(text) > MAX_NOTE_CHARS:
        raise ValidationError(f"the note has {len(text)} characters; the most is {MAX_NOTE_CHARS}")
    # Scoped like every read: another manager's tenant is "not found", not "forbidden".
    tenant = scoped_tenant(session, actor, tenant_external_id)
    now = utcnow()
    note_id = session.execute(
        insert(TenantNote)
        .values(tenant_id=tenant.id, author=actor.email, created_at=now, body=text)
        .returning(TenantNote.id)
    ).scalar_one()
    audit.append(
        session,
        actor,
        "note.add",
        "tenant",
        tenant.external_id,
        after={"note_id": note_id, "body": text},
    )
    return NoteAdded(note_id, tenant.external_id, now)
