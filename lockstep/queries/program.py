"""Programs: which one a page or command shows by default, its window and the dashboard's "today".

Several programs can be synced side by side; every query that reads plan items, tracks or
closed weeks takes a `program` (None: `default_program`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from lockstep.clock import utcnow
from lockstep.config import get_settings
from lockstep.errors import NotFoundError
from lockstep.models import Program, Track


def program_today(*, session: Session, program: str | None = None) -> date:
    """The dashboard's today: settings.as_of, else the real date capped to the program's end.

    The program is `program`, else the default one (`default_program`).
    """
    as_of = get_settings().as_of
    if as_of is not None:
        return as_of
    today = utcnow().date()
    program = program or default_program(session=session)
    end = session.scalar(select(Program.end_date).where(Program.id == program)) if program else None
    return min(today, end) if end is not None else today


def _real_today() -> date:
    as_of = get_settings().as_of
    return as_of if as_of is not None else utcnow().date()


def default_program(*, session: Session) -> str | None:
    """The program pages and commands show unless told otherwise; None when none is synced.

    The one whose window holds today (LOCKSTEP_AS_OF, else the real date); of several, the
    one that started last; when none holds today, the one that starts last. Every other
    place asks this function.
    """
    today = _real_today()
    rows = session.execute(
        select(Program.id, Program.start_date, Program.end_date).order_by(
            Program.start_date.desc(), Program.id
        )
    ).all()
    running = [r.id for r in rows if r.start_date <= today <= r.end_date]
    if running:
        return running[0]
    return rows[0].id if rows else None


def programs(*, session: Session) -> pd.DataFrame:
    """Every synced program, the one that starts first first.

    Columns: id, name, start (date), end (date).
    """
    rows = session.execute(
        select(Program.id, Program.name, Program.start_date, Program.end_date).order_by(
            Program.start_date, Program.id
        )
    ).all()
    return pd.DataFrame([tuple(r) for r in rows], columns=["id", "name", "start", "end"])


def resolve_program(*, session: Session, program: str | None) -> str:
    """`program` when it exists, else (None) the default; NotFoundError naming the known ids."""
    known = list(session.scalars(select(Program.id).order_by(Program.start_date, Program.id)))
    if program is None:
        chosen = default_program(session=session)
        if chosen is None:
            raise NotFoundError(
                "there is no program in the database: "
                "run `python -m lockstep plan sync plan/90-day-plan.yaml`"
            )
        return chosen
    if program not in known:
        listed = ", ".join(known) or "none (sync a plan first)"
        raise NotFoundError(f"there is no program {program!r}; known programs: {listed}")
    return program


@dataclass(frozen=True)
class ProgramWindow:
    """The program's window and where today sits in it (days counted inclusively)."""

    id: str
    name: str
    start: date
    end: date
    today: date

    @property
    def days_total(self) -> int:
        """Days in the window, first and last day included (2020-04-01..06-30 is 91)."""
        return (self.end - self.start).days + 1

    @property
    def day(self) -> int:
        """Today's day number: 1 on the start date, 0 before it, capped at days_total."""
        return max(0, min((self.today - self.start).days + 1, self.days_total))

    @property
    def days_left(self) -> int:
        """Whole days from today to the end date (0 on the last day, negative after it)."""
        return (self.end - self.today).days


def program_window(*, session: Session, program: str | None = None) -> ProgramWindow | None:
    """The program (default: `default_program`) with today, or None when there is no such program."""
    program = program or default_program(session=session)
    row = session.execute(
        select(Program.id, Program.name, Program.start_date, Program.end_date).where(Program.id == program)
    ).first()
    if row is None:
        return None
    today = program_today(session=session, program=row.id)
    return ProgramWindow(row.id, row.name, row.start_date, row.end_date, today)


def program_tracks(*, session: Session, program: str | None = None) -> list[str]:
    """Codes of the program's tracks, in plan order."""
    program = program or default_program(session=session)
    return list(
        session.scalars(
            select(Track.code).where(Track.program_id == program).order_by(Track.position, Track.code)
        )
    )


def program_track(*, session: Session, kind: str, program: str | None = None) -> str | None:
    """The program's track for a page section: `kind` or `kind_…` (e2ee, e2ee_ga), first in plan order."""
    for code in program_tracks(session=session, program=program):
        if code == kind or code.startswith(f"{kind}_"):
            return code
    return None


def program_deadlines(*, session: Session, program: str | None = None) -> pd.DataFrame:
    """Each deadline of the program's tracks and the program's end, soonest first.

    Columns: what (str), deadline (date), days_left (int; 0 = today, negative = passed).
    """
    program = program or default_program(session=session)
    today = program_today(session=session, program=program)
    rows = [
        (f"{name} cut-over", deadline)
        for name, deadline in session.execute(
            select(Track.name, Track.deadline)
            .where(Track.deadline.is_not(None), Track.program_id == program)
            .order_by(Track.position)
        )
    ]
    end = session.scalar(select(Program.end_date).where(Program.id == program))
    if end is not None:
        rows.append(("Program end", end))
    frame = pd.DataFrame(rows, columns=["what", "deadline"])
    frame["days_left"] = [(d - today).days for d in frame["deadline"]]
    return frame.sort_values("deadline", kind="stable").reset_index(drop=True)
