"""The order in which rollout writers take their locks, so concurrent writers wait and never deadlock.

On PostgreSQL every writer of rollout data takes its locks in this order:

1. The rollout gate, a transaction-scoped advisory lock: shared by single events
   (`record_event`), exclusive for bulk writers (imports, closing weeks, `db rebuild-state`).
   A bulk writer therefore starts only when no single event is half-way, and a single event
   waits for the bulk writer to commit, before either holds any row. (Without it an event held a tenant's
   state row and waited for the events table an import had locked, while the import waited
   for that row: a deadlock that killed the import.)
2. The tenant's row (`SELECT … FOR NO KEY UPDATE`): two events for one tenant run one after
   the other, and the second reads history and current state only once the first has
   committed. The tenant row always exists, unlike a (tenant, track) state row before the
   tenant's first event on a track.
3. Counter rows (stage_counts, then feature_counts) in sorted key order (`add_to_counts`).
4. The audit head, last (`audit.append`).

SQLite needs none of this: a write session holds the database's write lock from its first
statement (BEGIN IMMEDIATE), so its writers already run one at a time.
"""

from __future__ import annotations

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from lockstep.models import Tenant

# Any constant works; it only has to be the same in every process. ("LKST" in ASCII.)
ROLLOUT_GATE = 0x4C4B5354


def hold_rollout_gate(session: Session, *, exclusive: bool) -> None:
    """Take the rollout gate for the rest of the transaction (PostgreSQL; SQLite needs none)."""
    if session.get_bind().dialect.name != "postgresql":
        return
    fn = "pg_advisory_xact_lock" if exclusive else "pg_advisory_xact_lock_shared"
    session.execute(text(f"SELECT {fn}(:key)"), {"key": ROLLOUT_GATE})


def lock_tenant(session: Session, external_id: str) -> Tenant | None:
    """The tenant with this external id, its row locked until commit (None when there is none)."""
    return session.scalar(
        select(Tenant)
        .where(Tenant.external_id == external_id)
        .with_for_update(key_share=True)  # FOR NO KEY UPDATE: foreign-key checks of other rows go on
        .execution_options(populate_existing=True)
    )
