"""Reading the audit log: filtered, paged in SQL, and the chain's health. Admins only."""

from __future__ import annotations

import json
from datetime import date, datetime, time, timedelta
from typing import Any

import pandas as pd
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from lockstep.models import AuditEntry, AuditHead
from lockstep.permissions import Actor, require
from lockstep.services.audit import VerifyResult, verify

ENTRY_COLUMNS = ["id", "at", "actor", "action", "entity_type", "entity_id", "before", "after"]
OPTIONS_LIMIT = 500


def json_text(value: Any) -> str:
    """A before/after value as one line of JSON text ('' for none)."""
    if value is None:
        return ""
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)


def _filtered(
    stmt: Select,
    *,
    actors: tuple[str, ...] = (),
    actions: tuple[str, ...] = (),
    entity_types: tuple[str, ...] = (),
    entity_id: str = "",
    start: date | None = None,
    end: date | None = None,
) -> Select:
    if actors:
        stmt = stmt.where(AuditEntry.actor.in_(actors))
    if actions:
        stmt = stmt.where(AuditEntry.action.in_(actions))
    if entity_types:
        stmt = stmt.where(AuditEntry.entity_type.in_(entity_types))
    if entity_id.strip():
        stmt = stmt.where(AuditEntry.entity_id == entity_id.strip())
    if start is not None:
        stmt = stmt.where(AuditEntry.at >= datetime.combine(start, time()))
    if end is not None:
        # The end date is inclusive: everything before the next midnight.
        stmt = stmt.where(AuditEntry.at < datetime.combine(end + timedelta(days=1), time()))
    return stmt


def audit_entries(
    *,
    session: Session,
    actor: Actor,
    limit: int = 50,
    offset: int = 0,
    **filters,
) -> pd.DataFrame:
    """One page of audit entries, newest first, matching the filters.

    Filters: actors, actions, entity_types (tuples), entity_id (exact), start/end (dates,
    inclusive). Columns: id, at, actor, action, entity_type, entity_id, before, after
    (before/after as JSON text, '' when empty).
    """
    require(actor, "audit.read")
    stmt = _filtered(select(AuditEntry), **filters).order_by(AuditEntry.id.desc()).limit(limit).offset(offset)
    rows = [
        (e.id, e.at, e.actor, e.action, e.entity_type, e.entity_id, json_text(e.before), json_text(e.after))
        for e in session.scalars(stmt)
    ]
    return pd.DataFrame(rows, columns=ENTRY_COLUMNS)


def audit_entry_count(*, session: Session, actor: Actor, **filters) -> int:
    """How many audit entries match the filters (same filters as audit_entries)."""
    require(actor, "audit.read")
    return session.scalar(_filtered(select(func.count()).select_from(AuditEntry), **filters)) or 0


def audit_filter_options(*, session: Session, actor: Actor) -> dict[str, list[str]]:
    """Values to filter by: keys actors, actions, entity_types (each sorted, at most OPTIONS_LIMIT)."""
    require(actor, "audit.read")

    def distinct(column) -> list[str]:
        return list(session.scalars(select(column).distinct().order_by(column).limit(OPTIONS_LIMIT)))

    return {
        "actors": distinct(AuditEntry.actor),
        "actions": distinct(AuditEntry.action),
        "entity_types": distinct(AuditEntry.entity_type),
    }


def chain_status(*, session: Session, actor: Actor, expected_head: str | None = None) -> VerifyResult:
    """Walk the whole hash chain (see lockstep.services.audit.verify)."""
    require(actor, "audit.read")
    return verify(session, expected_head=expected_head)


def audit_head(*, session: Session, actor: Actor) -> tuple[int, str] | None:
    """The newest entry's id and hash as the head row records them, or None for an empty log."""
    require(actor, "audit.read")
    head = session.get(AuditHead, 1)
    return (head.last_id, head.hash) if head else None
