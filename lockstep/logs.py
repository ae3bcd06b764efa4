"""Structured operational logs: one JSON line on stderr per sign-in, write and error.

Every write is audited, so the audit service queues a log line for each entry it appends and
the line is printed only when that transaction commits (a rolled-back write never happened
and is not logged). Sign-ins, failures and sign-outs are audited actions, so they log the
same way. Unhandled errors in a page are logged by the app's entry point.

A line carries what an operator needs to follow events, never their content: the action,
who, what entity, when; no before/after values, no note bodies, and any field whose name
says password, token, secret or key is replaced by "[redacted]". Standard library only:
a log collector reads JSON lines from stderr without an agent in the app.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session

LOGGER = "lockstep"
_PENDING = "lockstep_log_pending"
_SECRET = re.compile(r"pass|token|secret|key|hash|cookie|authorization", re.IGNORECASE)
_MAX_VALUE = 500  # characters: a log line is for finding things, not for carrying data


class JsonLines(logging.Formatter):
    """Format a record as one JSON object: ts, level, event, then the record's fields."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON."""
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "event": record.getMessage(),
        }
        line.update(redact(getattr(record, "fields", {})))
        return json.dumps(line, default=str, ensure_ascii=False)


def redact(fields: dict[str, Any]) -> dict[str, Any]:
    """A copy of `fields` with secrets replaced and long values cut."""
    out = {}
    for name, value in fields.items():
        if _SECRET.search(name):
            out[name] = "[redacted]"
        elif isinstance(value, str) and len(value) > _MAX_VALUE:
            out[name] = value[:_MAX_VALUE] + "…"
        else:
            out[name] = value
    return out


def configure_logging(stream=None) -> logging.Logger:
    """Send the lockstep logger's records to stderr as JSON lines (idempotent)."""
    logger = logging.getLogger(LOGGER)
    if not any(getattr(h, "_lockstep_json", False) for h in logger.handlers):
        handler = logging.StreamHandler(stream or sys.stderr)
        handler.setFormatter(JsonLines())
        handler._lockstep_json = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    # Our lines are complete on their own; do not repeat them through the root logger.
    logger.propagate = False
    return logger


def log_event(name: str, *, level: int = logging.INFO, **fields: Any) -> None:
    """Log one structured line now."""
    logging.getLogger(LOGGER).log(level, name, extra={"fields": fields})


def log_on_commit(session: Session, name: str, **fields: Any) -> None:
    """Log one structured line when `session`'s transaction commits; drop it on rollback."""
    session.info.setdefault(_PENDING, []).append((name, fields))


@event.listens_for(Session, "after_commit")
def _flush_pending(session: Session) -> None:
    for name, fields in session.info.pop(_PENDING, []):
        log_event(name, **fields)


@event.listens_for(Session, "after_rollback")
def _drop_pending(session: Session) -> None:
    session.info.pop(_PENDING, None)
