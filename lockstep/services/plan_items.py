"""Editing what happened to a plan item: status, percent, comment, done date.

Edits use optimistic locking: the caller says which version it loaded, and the UPDATE
only lands while the row still has that version. Two people editing the same item
therefore never overwrite each other silently; the second one gets a ConflictError
carrying the first one's change.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from lockstep.clock import utcnow
from lockstep.config import get_settings
from lockstep.errors import ConflictError, NotFoundError, ValidationError
from lockstep.models import PLAN_STATUSES, PlanItem, PlanItemUpdate
from lockstep.permissions import Actor, require
from lockstep.services import audit

EDITABLE = ("status", "percent", "comment", "done_date")


@dataclass(frozen=True)
class PlanItemChange:
    """What update_plan_item did: the item's version after it and field -> [before, after]."""

    item_id: str
    version: int
    changes: dict[str, list[Any]] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        """False when the submit changed nothing (no version bump, no audit entry)."""
        return bool(self.changes)


def _calendar_today() -> date:
    # "In the future" means after the real date (or the configured as-of date), not after
    # the program's capped today: work finished after the program ended is still real.
    return get_settings().as_of or utcnow().date()


def _json(value: Any) -> Any:
    return value.isoformat() if isinstance(value, date) else value


def _current(item: PlanItem) -> dict[str, Any]:
    return {
        "status": item.status,
        "percent": item.percent,
        "comment": item.comment,
        "done_date": item.done_date,
        "version": item.version,
        "updated_by": item.updated_by,
        "updated_at": item.updated_at,
    }


def latest_change(session: Session, item_id: str) -> dict[str, Any] | None:
    """The newest saved change of an item: {who, when, version, changes}, or None."""
    row = session.execute(
        select(PlanItemUpdate)
        .where(PlanItemUpdate.item_id == item_id)
        .order_by(PlanItemUpdate.version.desc(), PlanItemUpdate.id.desc())
        .limit(1)
    ).scalar_one_or_none()
    if row is None:
        return None
    return {"who": row.changed_by, "when": row.changed_at, "version": row.version, "changes": row.changes}


def _conflict(session: Session, item: PlanItem, expected_version: int) -> ConflictError:
    return ConflictError(
        f"plan item '{item.id}' was changed by someone else since you loaded it "
        f"(you loaded version {expected_version}; it is now version {item.version}); nothing was saved",
        current=_current(item),
        their_change=latest_change(session, item.id),
    )


def _validate(item: PlanItem, new: dict[str, Any]) -> None:
    status, percent, done_date = new["status"], new["percent"], new["done_date"]
    if status not in PLAN_STATUSES:
        raise ValidationError(f"status: {status!r} is not a plan status (one of: {', '.join(PLAN_STATUSES)})")
    if isinstance(percent, bool) or not isinstance(percent, int) or not 0 <= percent <= 100:
        raise ValidationError(f"percent: {percent!r} must be a whole number from 0 to 100")
    if done_date is not None:
        if status != "done":
            raise ValidationError(f"done_date: a done date needs status 'done' (the status is '{status}')")
        if done_date > _calendar_today():
            raise ValidationError(f"done_date: {done_date} is in the future (today is {_calendar_today()})")
        if item.planned_start is not None and done_date < item.planned_start:
            raise ValidationError(
                f"done_date: {done_date} is before the item's planned start {item.planned_start}"
            )


def update_plan_item(
    *,
    session: Session,
    actor: Actor,
    item_id: str,
    expected_version: int,
    status: str | None = None,
    percent: int | None = None,
    comment: str | None = None,
    done_date: date | None = None,
) -> PlanItemChange:
    """Save status/percent/comment/done date of one item if it is still at `expected_version`.

    None leaves a field as it is. Status done sets percent to 100 and, without a done
    date, dates it today; leaving status done clears the done date. Raises
    PermissionDenied, NotFoundError, ValidationError (naming the field) or ConflictError
    (someone saved first; nothing is written). Submitting the current values is a no-op.
    """
    require(actor, "plan.edit")
    item = session.get(PlanItem, item_id)
    if item is None:
        raise NotFoundError(f"no plan item '{item_id}'")
    if item.retired_at is not None:
        raise ValidationError(
            f"plan item '{item_id}' was retired from the plan on {item.retired_at:%Y-%m-%d}"
        )

    new = {
        "status": item.status if status is None else status,
        "percent": item.percent if percent is None else percent,
        "comment": item.comment if comment is None else comment,
        "done_date": item.done_date if done_date is None else done_date,
    }
    if new["status"] == "done":
        new["percent"] = 100
        if new["done_date"] is None:
            new["done_date"] = _calendar_today()
    elif done_date is None:
        # Leaving 'done' undoes the done date; an explicit one is still checked below.
        new["done_date"] = None
    _validate(item, new)

    before = _current(item)
    changes = {f: [_json(before[f]), _json(new[f])] for f in EDITABLE if before[f] != new[f]}
    if not changes:
        return PlanItemChange(item_id, item.version)

    if item.version != expected_version:
        raise _conflict(session, item, expected_version)
    now = utcnow()
    result = session.execute(
        update(PlanItem)
        .where(PlanItem.id == item_id, PlanItem.version == expected_version)
        .values(
            **{f: new[f] for f in changes},
            version=PlanItem.version + 1,
            updated_at=now,
            updated_by=actor.email,
        )
        .execution_options(synchronize_session=False)
    )
    if result.rowcount == 0:
        # Someone saved between our read and our write: report what they did.
        session.refresh(item)
        raise _conflict(session, item, expected_version)
    version = expected_version + 1
    session.execute(
        insert(PlanItemUpdate).values(
            item_id=item_id, version=version, changed_at=now, changed_by=actor.email, changes=changes
        )
    )
    audit.append(
        session,
        actor,
        "plan.update_item",
        "plan_item",
        item_id,
        before={**{f: pair[0] for f, pair in changes.items()}, "version": expected_version},
        after={**{f: pair[1] for f, pair in changes.items()}, "version": version},
    )
    session.expire(item)
    return PlanItemChange(item_id, version, changes)
