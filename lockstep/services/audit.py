"""The hash-chained audit log: append inside the caller's transaction, verify the chain.

The hash chain shows an entry edited, removed or reordered, but anyone who can write to the
database can also append an entry with a correctly recomputed hash, or empty the log. So
each entry also carries a MAC: HMAC-SHA256 of its hash under the audit key, which lives
outside the database (LOCKSTEP_AUDIT_KEY or LOCKSTEP_AUDIT_KEY_FILE). Once entries carry
a MAC, `verify` passes only with the key, and an entry without a valid MAC after a keyed
one is reported as written outside Lockstep. Entries written before the key was set keep
no MAC and are checked by their hashes alone. An empty log in a database that holds data
is reported as emptied. Without a key, entries are written unkeyed and a warning is logged.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from dataclasses import dataclass
from functools import cache
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from lockstep.clock import utcnow
from lockstep.config import get_settings
from lockstep.errors import LockstepError
from lockstep.logs import log_event, log_on_commit
from lockstep.models import AuditEntry, AuditHead, PlanItem, Tenant, User
from lockstep.permissions import Actor
from lockstep.sqlutil import insert_for

GENESIS = "0" * 64
_FROM_SETTINGS: Any = object()


def entry_mac(key: bytes, entry_hash_hex: str) -> str:
    """HMAC-SHA256 of an entry's hash under the audit key (the hash already covers content and chain)."""
    return hmac.new(key, entry_hash_hex.encode("ascii"), hashlib.sha256).hexdigest()


@cache
def _warn_unkeyed() -> None:
    log_event(
        "audit_key_missing",
        level=logging.WARNING,
        detail="LOCKSTEP_AUDIT_KEY is not set: audit entries are written without a MAC, so an entry "
        "appended directly in the database cannot be told from a real one (see docs/security.md)",
    )


def _refuse_unkeyed_after_keyed(session: Session, last_id: int) -> None:
    # An unkeyed entry after keyed ones makes `audit verify` fail for good: refuse the write
    # instead (a command run without the key, or a server started without it).
    if last_id and session.scalar(select(AuditEntry.mac).where(AuditEntry.id == last_id)) is not None:
        raise AuditKeyMissing(
            "the audit log's entries carry MACs but no audit key is set, so this change is not saved: "
            "set LOCKSTEP_AUDIT_KEY or LOCKSTEP_AUDIT_KEY_FILE to the key (make run keeps it in "
            "data/audit.key)"
        )


class AuditKeyMissing(LockstepError):
    """A write was refused: the log is keyed and this process has no key."""


def _plain(value: Any) -> Any:
    """JSON-safe copy (dates as ISO strings) so what is stored is exactly what is hashed."""
    if value is None:
        return None
    return json.loads(json.dumps(value, default=str, sort_keys=True))


def entry_hash(
    prev_hash: str,
    *,
    id: int,
    at,
    actor: str,
    action: str,
    entity_type: str,
    entity_id: str,
    before: Any,
    after: Any,
) -> str:
    """sha256 over the previous hash and this entry's canonical JSON."""
    body = json.dumps(
        {
            "id": id,
            "at": at.isoformat(timespec="microseconds"),
            "actor": actor,
            "action": action,
            "entity_type": entity_type,
            "entity_id": entity_id,
            "before": before,
            "after": after,
        },
        sort_keys=True,
        separators=(",", ":"),
        default=str,
    )
    return hashlib.sha256((prev_hash + body).encode()).hexdigest()


def append(
    session: Session,
    actor: Actor | str,
    action: str,
    entity_type: str,
    entity_id: str | int,
    *,
    before: Any = None,
    after: Any = None,
) -> AuditEntry:
    """Append one entry to the chain in the caller's transaction and return it."""
    # Locking the head row serialises concurrent writers so the chain never forks.
    locked = (
        select(AuditHead).where(AuditHead.id == 1).with_for_update().execution_options(populate_existing=True)
    )
    head = session.execute(locked).scalar_one_or_none()
    if head is None:
        # The first entry ever: two writers can both find no head. ON CONFLICT DO NOTHING makes
        # the second wait for the first's row instead of failing on a duplicate key.
        session.execute(
            insert_for(session, AuditHead.__table__)
            .values(id=1, last_id=0, hash=GENESIS)
            .on_conflict_do_nothing(index_elements=["id"])
        )
        head = session.execute(locked).scalar_one()
    entry = AuditEntry(
        id=head.last_id + 1,
        at=utcnow(),
        actor=actor if isinstance(actor, str) else actor.email,
        action=action,
        entity_type=entity_type,
        entity_id=str(entity_id),
        before=_plain(before),
        after=_plain(after),
        prev_hash=head.hash,
    )
    entry.hash = entry_hash(
        entry.prev_hash,
        id=entry.id,
        at=entry.at,
        actor=entry.actor,
        action=action,
        entity_type=entity_type,
        entity_id=entry.entity_id,
        before=entry.before,
        after=entry.after,
    )
    key = get_settings().audit_key
    if key is None:
        _refuse_unkeyed_after_keyed(session, head.last_id)
        _warn_unkeyed()
    entry.mac = entry_mac(key, entry.hash) if key is not None else None
    session.add(entry)
    head.last_id, head.hash = entry.id, entry.hash
    session.flush()
    log_on_commit(
        session,
        "sign_in" if action.startswith("auth.") else "write",
        action=action,
        user=entry.actor,
        entity_type=entity_type,
        entity_id=entry.entity_id,
        audit_id=entry.id,
    )
    return entry


@dataclass
class VerifyResult:
    """Outcome of a chain check: ok, entries checked, the newest good hash, the first problem.

    `bad_id` is the id of the first entry that is wrong or missing (None when ok); `keyed`
    and `unkeyed` count the entries checked with and without a MAC.
    """

    ok: bool
    checked: int
    head: str
    problem: str = ""
    bad_id: int | None = None
    keyed: int = 0
    unkeyed: int = 0


def verify(
    session: Session,
    *,
    expected_head: str | None = None,
    key: bytes | None = _FROM_SETTINGS,
    batch: int = 5000,
) -> VerifyResult:
    """Walk the chain in id order; report the first edited, missing, reordered, forged or cut-off entry.

    Without `expected_head` a tail cut off together with a rewritten head row cannot be
    seen; pass a head hash kept outside the database (`audit head`) to catch that too.
    `key` is the audit key (default: from the settings); entries with a MAC need it.
    """
    if key is _FROM_SETTINGS:
        key = get_settings().audit_key
    prev, expected_id, checked = GENESIS, 1, 0
    last_id = 0
    keyed = unkeyed = 0
    first_keyed: int | None = None

    def broken(bad_id: int, problem: str) -> VerifyResult:
        return VerifyResult(False, checked, prev, problem, bad_id, keyed, unkeyed)

    while True:
        rows = (
            session.execute(
                select(AuditEntry).where(AuditEntry.id > last_id).order_by(AuditEntry.id).limit(batch)
            )
            .scalars()
            .all()
        )
        if not rows:
            break
        for e in rows:
            if e.id != expected_id:
                return broken(expected_id, f"entry {expected_id} is missing (the next entry is {e.id})")
            if e.prev_hash != prev:
                return broken(
                    e.id, f"entry {e.id} does not follow entry {e.id - 1} (entries reordered or removed)"
                )
            recomputed = entry_hash(
                prev,
                id=e.id,
                at=e.at,
                actor=e.actor,
                action=e.action,
                entity_type=e.entity_type,
                entity_id=e.entity_id,
                before=e.before,
                after=e.after,
            )
            if recomputed != e.hash:
                return broken(e.id, f"entry {e.id} was edited (its content does not match its hash)")
            if e.mac is None:
                if first_keyed is not None:
                    return broken(
                        e.id,
                        f"entry {e.id} has no MAC although entries from {first_keyed} on have one: "
                        "it was written outside Lockstep (or its MAC was removed)",
                    )
                unkeyed += 1
            else:
                if key is None:
                    return broken(
                        e.id,
                        f"entries from {e.id} on carry a MAC and no audit key was given: set "
                        "LOCKSTEP_AUDIT_KEY (or LOCKSTEP_AUDIT_KEY_FILE) to the key they were written with",
                    )
                if not hmac.compare_digest(e.mac, entry_mac(key, e.hash)):
                    return broken(
                        e.id,
                        f"entry {e.id} has no valid MAC: it was not written with the audit key "
                        "(forged or appended outside Lockstep, or the key given is not the one in use)",
                    )
                first_keyed = e.id if first_keyed is None else first_keyed
                keyed += 1
            prev, expected_id, checked = e.hash, e.id + 1, checked + 1
        last_id = rows[-1].id
        session.expunge_all()
    head = session.get(AuditHead, 1)
    if head is not None and (head.hash != prev or head.last_id != checked):
        return broken(
            expected_id,
            f"the log ends at entry {expected_id - 1} but the head row says entry {head.last_id}: "
            "entries were cut off the end",
        )
    if head is None and checked:
        return broken(expected_id, "the head row is missing: the log may have been cut off the end")
    if not checked and (held := _data_held(session)):
        return broken(1, f"the audit log is empty but the database holds {held}: every write is audited, "
                         "so the log was emptied")
    if expected_head and expected_head != prev:
        known = session.execute(select(AuditEntry.id).where(AuditEntry.hash == expected_head)).scalar()
        if known is None:
            return broken(
                expected_id,
                f"the kept head {expected_head[:12]}… is not in the log: entries after entry "
                f"{expected_id - 1} were cut off or rewritten",
            )
    return VerifyResult(True, checked, prev, keyed=keyed, unkeyed=unkeyed)


def _data_held(session: Session) -> str:
    """'N tenants, M users and K plan items' for whichever of them the database holds, else ''."""
    counts = [
        (session.scalar(select(func.count()).select_from(model)) or 0, noun)
        for model, noun in ((Tenant, "tenants"), (User, "users"), (PlanItem, "plan items"))
    ]
    parts = [f"{n:,} {noun}" for n, noun in counts if n]
    return ", ".join(parts[:-1]) + (" and " if len(parts) > 1 else "") + parts[-1] if parts else ""
