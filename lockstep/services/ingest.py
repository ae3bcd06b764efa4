"""Events arriving over the API: the CSV import's rules and transaction, once per Idempotency-Key.

The events go through imports.import_event_rows, the same validation and write as an
uploaded events CSV (all or nothing, repeats skipped, one audit entry). What this adds is
the memory of answers: a request sent with an Idempotency-Key has its answer stored in the
same transaction as its events, so a retry of that request (a client that timed out, a
proxy that resent it) gets the first answer back and writes nothing. Only answers that
wrote their transaction are kept: a rejected request wrote nothing, and its retry is simply
checked again. Keys belong to one token and are forgotten after IDEMPOTENCY_HOURS.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import delete
from sqlalchemy.orm import Session

from lockstep.clock import utcnow
from lockstep.errors import ValidationError
from lockstep.models import ApiIdempotency
from lockstep.permissions import require
from lockstep.services.api_tokens import TokenHolder
from lockstep.services.imports import import_event_rows

IDEMPOTENCY_HOURS = 24
API_SOURCE = "api"


class IdempotencyKeyReused(ValidationError):
    """The key was used before, by this token, for a request with a different body."""


@dataclass(frozen=True)
class IngestAnswer:
    """What to answer: HTTP status, JSON body, and whether it is a stored answer repeated."""

    status: int
    body: dict[str, Any]
    replayed: bool = False


def ingest_events(
    *,
    session: Session,
    holder: TokenHolder,
    rows: Sequence[Any],
    idempotency_key: str | None = None,
    request_sha256: str = "",
) -> IngestAnswer:
    """Import `rows` as the token's actor (201: events added, 200: none new), or repeat a stored answer.

    Raises ImportRejected (nothing written) for bad rows, IdempotencyKeyReused when the key
    came before with another body, PermissionDenied for a role without import.run.
    """
    require(holder.actor, "import.run")
    if idempotency_key is not None:
        now = utcnow()
        session.execute(
            delete(ApiIdempotency).where(ApiIdempotency.created_at < now - timedelta(hours=IDEMPOTENCY_HOURS))
        )
        stored = session.get(ApiIdempotency, (holder.token_id, idempotency_key))
        if stored is not None:
            if stored.request_sha256 != request_sha256:
                raise IdempotencyKeyReused(
                    f"Idempotency-Key {idempotency_key!r} was used at {stored.created_at:%Y-%m-%d %H:%M} UTC "
                    "for a different request; use a new key for new events"
                )
            return IngestAnswer(stored.status, dict(stored.response), replayed=True)
    result = import_event_rows(
        session=session,
        rows=rows,
        actor=holder.actor,
        source_name=f"api:{holder.name}",
        default_source=API_SOURCE,
    )
    answer = IngestAnswer(
        201 if result.added else 200,
        {"rows": result.rows, "added": result.added, "skipped": result.skipped},
    )
    if idempotency_key is not None:
        session.add(
            ApiIdempotency(
                token_id=holder.token_id,
                key=idempotency_key,
                request_sha256=request_sha256,
                status=answer.status,
                response=answer.body,
                created_at=now,
            )
        )
        session.flush()
    return answer
