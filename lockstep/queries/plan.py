"""Plan items: the list, the key numbers, dependencies, history and the burn-up.

What "overdue" and "at risk" mean is written once, here, as SQL expressions; the pages
quote `OVERDUE_RULE` and `AT_RISK_RULE` so the words and the counts cannot drift apart.
Retired items (removed from the plan file) are left out unless asked for.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta

import pandas as pd
from sqlalchemy import ColumnElement, and_, case, func, not_, or_, select
from sqlalchemy.orm import Session

from lockstep.labels import plan_status_label
from lockstep.models import PlanItem, PlanItemUpdate, Workstream
from lockstep.queries.program import default_program, program_today

AT_RISK_WINDOW_DAYS = 7
AT_RISK_BELOW_PERCENT = 50
# Work has begun on an item in these statuses (used for the dependency flag).
STARTED_STATUSES = ("in_progress", "at_risk", "done")

OVERDUE_RULE = "overdue = not done and due before today"
AT_RISK_RULE = (
    f"at risk = status at risk or blocked, or not done, due within {AT_RISK_WINDOW_DAYS} days "
    f"and under {AT_RISK_BELOW_PERCENT}% complete"
)


def done_by(asof: date | None = None) -> ColumnElement[bool]:
    """Items done as of `asof` (None: now, by status alone; a done item with no date counts as done)."""
    is_done = PlanItem.status == "done"
    if asof is None:
        return is_done
    return and_(is_done, or_(PlanItem.done_date.is_(None), PlanItem.done_date <= asof))


def is_overdue(today: date, *, asof: date | None = None) -> ColumnElement[bool]:
    """Overdue on `asof` (default today): not done by then and due before it."""
    day = asof or today
    return and_(not_(done_by(asof)), PlanItem.due_date.is_not(None), PlanItem.due_date < day)


def is_at_risk(today: date, *, asof: date | None = None) -> ColumnElement[bool]:
    """At risk on `asof` (default today): blocked/at-risk status, or due soon and under half done.

    For a past `asof` only the dates move; status and percent are today's (they are not dated).
    """
    day = asof or today
    due_soon = and_(
        PlanItem.due_date >= day,
        PlanItem.due_date <= day + timedelta(days=AT_RISK_WINDOW_DAYS),
        PlanItem.percent < AT_RISK_BELOW_PERCENT,
    )
    return and_(not_(done_by(asof)), or_(PlanItem.status.in_(("at_risk", "blocked")), due_soon))


def _live(program: str | None = None) -> ColumnElement[bool]:
    live = PlanItem.retired_at.is_(None)
    return live if program is None else and_(live, PlanItem.program_id == program)


def _program(session: Session, program: str | None) -> str | None:
    return program or default_program(session=session)


def _count(cond: ColumnElement[bool]):
    return func.coalesce(func.sum(case((cond, 1), else_=0)), 0)


def plan_key_numbers(
    *, session: Session, today: date | None = None, program: str | None = None
) -> pd.DataFrame:
    """Done / at risk / overdue / total plan items now and 7 days earlier (retired items excluded).

    The week-ago figures come from the due and done dates; status and percent are not
    dated, so "at risk a week ago" uses today's status and percent (an approximation).
    'total' (live items) is not compared: its week_ago repeats now.
    Columns: measure ('done', 'at_risk', 'overdue', 'total'), now (int), week_ago (int).
    The program's items only (default: `default_program`).
    """
    program = _program(session, program)
    today = today or program_today(session=session, program=program)
    ago = today - timedelta(days=7)
    row = session.execute(
        select(
            _count(done_by()).label("done_now"),
            _count(done_by(ago)).label("done_ago"),
            _count(is_at_risk(today)).label("at_risk_now"),
            _count(is_at_risk(today, asof=ago)).label("at_risk_ago"),
            _count(is_overdue(today)).label("overdue_now"),
            _count(is_overdue(today, asof=ago)).label("overdue_ago"),
            func.count().label("total_now"),
        ).where(_live(program))
    ).one()
    measures = ("done", "at_risk", "overdue", "total")
    return pd.DataFrame(
        {
            "measure": measures,
            "now": [int(row._mapping[f"{m}_now"]) for m in measures],
            "week_ago": [int(row._mapping[f"{m}_ago" if m != "total" else "total_now"]) for m in measures],
        }
    )


def plan_items(
    *,
    session: Session,
    today: date | None = None,
    workstreams: Sequence[str] | None = None,
    owners: Sequence[str] | None = None,
    statuses: Sequence[str] | None = None,
    overdue_only: bool = False,
    include_retired: bool = False,
    program: str | None = None,
) -> pd.DataFrame:
    """Plan items matching the filters (applied in SQL), soonest due first.

    Columns: id, workstream, workstream_name, title, owner, status, percent, planned_start,
    due_date, done_date, depends_on (list of ids), uncertain, comment, version, retired (bool),
    overdue (bool), at_risk (bool), slip_days (int: days done after due, or days overdue; 0 otherwise).
    The program's items only (default: `default_program`).
    """
    program = _program(session, program)
    today = today or program_today(session=session, program=program)
    stmt = (
        select(
            PlanItem.id,
            PlanItem.workstream_code.label("workstream"),
            Workstream.name.label("workstream_name"),
            PlanItem.title,
            PlanItem.owner,
            PlanItem.status,
            PlanItem.percent,
            PlanItem.planned_start,
            PlanItem.due_date,
            PlanItem.done_date,
            PlanItem.depends_on,
            PlanItem.uncertain,
            PlanItem.comment,
            PlanItem.version,
            PlanItem.retired_at.is_not(None).label("retired"),
            case((is_overdue(today), True), else_=False).label("overdue"),
            case((is_at_risk(today), True), else_=False).label("at_risk"),
        )
        .join(Workstream, Workstream.code == PlanItem.workstream_code)
        .where(PlanItem.program_id == program)
        .order_by(PlanItem.due_date.is_(None), PlanItem.due_date, PlanItem.id)
    )
    if not include_retired:
        stmt = stmt.where(_live())
    if workstreams:
        stmt = stmt.where(PlanItem.workstream_code.in_(list(workstreams)))
    if owners:
        stmt = stmt.where(PlanItem.owner.in_(list(owners)))
    if statuses:
        stmt = stmt.where(PlanItem.status.in_(list(statuses)))
    if overdue_only:
        stmt = stmt.where(is_overdue(today))
    frame = pd.DataFrame(session.execute(stmt).mappings().all(), columns=list(stmt.selected_columns.keys()))
    for col in ("retired", "overdue", "at_risk", "uncertain"):
        frame[col] = frame[col].astype(bool)
    frame["depends_on"] = [list(d or []) for d in frame["depends_on"]]
    frame["slip_days"] = [
        _slip(due, done, status, today)
        for due, done, status in zip(frame["due_date"], frame["done_date"], frame["status"], strict=True)
    ]
    return frame


def _slip(due: date | None, done: date | None, status: str, today: date) -> int:
    if due is None:
        return 0
    if status == "done":
        return max(0, (done - due).days) if done is not None else 0
    return max(0, (today - due).days)


def plan_filter_options(*, session: Session, program: str | None = None) -> dict[str, list]:
    """Choices for the program's plan filters: {'workstreams': [(code, name)], 'owners': [owner]}."""
    program = _program(session, program)
    workstreams = [
        (code, name)
        for code, name in session.execute(
            select(Workstream.code, Workstream.name)
            .where(Workstream.program_id == program)
            .order_by(Workstream.name)
        )
    ]
    owners = list(
        session.scalars(select(PlanItem.owner).where(_live(program)).distinct().order_by(PlanItem.owner))
    )
    return {"workstreams": workstreams, "owners": owners}


def plan_item(*, session: Session, item_id: str) -> dict | None:
    """One item's editable fields and version, or None when there is no such item.

    Keys: id, title, status, percent, comment, done_date, planned_start, due_date, version,
    retired (bool), updated_by, updated_at.
    """
    row = (
        session.execute(
            select(
                PlanItem.id,
                PlanItem.title,
                PlanItem.status,
                PlanItem.percent,
                PlanItem.comment,
                PlanItem.done_date,
                PlanItem.planned_start,
                PlanItem.due_date,
                PlanItem.version,
                PlanItem.retired_at.is_not(None).label("retired"),
                PlanItem.updated_by,
                PlanItem.updated_at,
            ).where(PlanItem.id == item_id)
        )
        .mappings()
        .first()
    )
    return None if row is None else {**row, "retired": bool(row["retired"])}


def plan_item_dependencies(*, session: Session, item_id: str) -> pd.DataFrame:
    """What `item_id` depends on and what depends on it, with each one's status.

    `flag` is set when work is under way on the later item while the earlier one is not
    done. The plan has tens of items, so "who depends on me" is read from every item's
    JSON list rather than through a backend-specific JSON query.
    Columns: relation ('depends on' | 'needed by'), id, title, status, percent, due_date,
    done_date, retired (bool), flag (str, '' when fine).
    """
    columns = ["relation", "id", "title", "status", "percent", "due_date", "done_date", "retired", "flag"]
    items = {
        r.id: r
        for r in session.execute(
            select(
                PlanItem.id,
                PlanItem.title,
                PlanItem.status,
                PlanItem.percent,
                PlanItem.due_date,
                PlanItem.done_date,
                PlanItem.depends_on,
                PlanItem.retired_at.is_not(None).label("retired"),
            )
        )
    }
    me = items.get(item_id)
    if me is None:
        return pd.DataFrame(columns=columns)
    rows = []
    for dep_id in me.depends_on or []:
        dep = items.get(dep_id)
        if dep is None:
            continue
        flag = _order_flag(me.id, me.status, dep.id, dep.status)
        rows.append(("depends on", *_fields(dep), flag))
    for other in sorted(items.values(), key=lambda r: r.id):
        if item_id in (other.depends_on or []):
            flag = _order_flag(other.id, other.status, me.id, me.status)
            rows.append(("needed by", *_fields(other), flag))
    return pd.DataFrame(rows, columns=columns)


def _fields(r) -> tuple:
    return (r.id, r.title, r.status, r.percent, r.due_date, r.done_date, bool(r.retired))


def _order_flag(later_id: str, later_status: str, earlier_id: str, earlier_status: str) -> str:
    if later_status in STARTED_STATUSES and earlier_status != "done":
        state = plan_status_label(later_status).lower()
        return (
            f"{later_id} is {state} while {earlier_id}, which it depends on, is {_not_done(earlier_status)}"
        )
    return ""


def _not_done(status: str) -> str:
    return "not started" if status == "not_started" else f"not done ({plan_status_label(status).lower()})"


def dependency_conflicts(*, session: Session, program: str | None = None) -> pd.DataFrame:
    """The program's live items started or done while something they depend on is not done.

    Columns: id, title, status, dependency, dependency_title, dependency_status (codes).
    """
    program = _program(session, program)
    rows = session.execute(
        select(PlanItem.id, PlanItem.status, PlanItem.depends_on).where(_live(program))
    ).all()
    known = {i: (t, st) for i, t, st in session.execute(select(PlanItem.id, PlanItem.title, PlanItem.status))}
    out = [
        (item_id, known[item_id][0], st, dep, *known[dep])
        for item_id, st, deps in rows
        if st in STARTED_STATUSES
        for dep in deps or []
        if dep in known and known[dep][1] != "done"
    ]
    return pd.DataFrame(
        out, columns=["id", "title", "status", "dependency", "dependency_title", "dependency_status"]
    )


def plan_item_history(*, session: Session, item_id: str, limit: int = 50) -> pd.DataFrame:
    """An item's saved changes, newest first.

    Columns: changed_at (datetime), changed_by, version (int), changes (str, e.g.
    "status: in_progress → done; percent: 60 → 100").
    """
    rows = session.execute(
        select(
            PlanItemUpdate.changed_at,
            PlanItemUpdate.changed_by,
            PlanItemUpdate.version,
            PlanItemUpdate.changes,
        )
        .where(PlanItemUpdate.item_id == item_id)
        .order_by(PlanItemUpdate.changed_at.desc(), PlanItemUpdate.id.desc())
        .limit(limit)
    ).all()
    return pd.DataFrame(
        [(at, by, version, describe_changes(changes)) for at, by, version, changes in rows],
        columns=["changed_at", "changed_by", "version", "changes"],
    )


def describe_changes(changes: dict | None) -> str:
    """A stored change set {field: [before, after]} in plain words."""
    parts = []
    for field, pair in (changes or {}).items():
        before, after = (list(pair) + [None, None])[:2] if isinstance(pair, list | tuple) else (None, pair)
        parts.append(f"{field}: {_show(before)} → {_show(after)}")
    return "; ".join(parts)


def _show(value) -> str:
    if value is None or value == "":
        return "—"
    text = str(value)
    return text if len(text) <= 80 else text[:77] + "..."


def plan_burnup(
    *, session: Session, start: date, end: date, today: date | None = None, program: str | None = None
) -> pd.DataFrame:
    """Cumulative planned vs done items per program week (live items only).

    Weeks run from `start` in 7-day steps; the last is cut at `end`. planned = items due
    on or before the week's last day; done = items with status done and a done date on or
    before it (done dates before `start` count in week 1). Weeks that start after today
    have no done value (NaN), so the done line stops at today.
    Columns: week (int, 1-based), week_start (date), week_end (date), label ("W1 (Apr 1)"),
    planned (int), done (float, NaN in the future). The program's items only (default: `default_program`).
    """
    program = _program(session, program)
    today = today or program_today(session=session, program=program)
    due = session.execute(
        select(PlanItem.due_date, func.count())
        .where(_live(program), PlanItem.due_date.is_not(None))
        .group_by(PlanItem.due_date)
    ).all()
    done = session.execute(
        select(PlanItem.done_date, func.count())
        .where(_live(program), PlanItem.status == "done", PlanItem.done_date.is_not(None))
        .group_by(PlanItem.done_date)
    ).all()
    rows = []
    week, first = 1, start
    while first <= end:
        last = min(first + timedelta(days=6), end)
        planned = sum(n for d, n in due if d <= last)
        done_n = float(sum(n for d, n in done if d <= last)) if first <= today else float("nan")
        rows.append((week, first, last, f"W{week} ({first:%b} {first.day})", planned, done_n))
        week, first = week + 1, first + timedelta(days=7)
    return pd.DataFrame(rows, columns=["week", "week_start", "week_end", "label", "planned", "done"])


__all__ = [
    "AT_RISK_RULE",
    "OVERDUE_RULE",
    "dependency_conflicts",
    "describe_changes",
    "is_at_risk",
    "is_overdue",
    "plan_burnup",
    "plan_filter_options",
    "plan_item",
    "plan_item_dependencies",
    "plan_item_history",
    "plan_items",
    "plan_key_numbers",
]
