"""The program itself: its window and the dashboard's "today"."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from lockstep.clock import utcnow
from lockstep.config import get_settings
from lockstep.models import Program, Track


def program_today(*, session: Session) -> date:
    """The dashboard's today: settings.as_of, else the real date capped to the program's end."""
    as_of = get_settings().as_of
    if as_of is not None:
        return as_of
    today = utcnow().date()
    end = session.scalar(select(func.max(Program.end_date)))
    return min(today, end) if end is not None else today


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


def program_window(*, session: Session) -> ProgramWindow | None:
    """The program (earliest start when several plans are synced) with today, or None when none is."""
    row = session.execute(
        select(Program.id, Program.name, Program.start_date, Program.end_date)
        .order_by(Program.start_date, Program.id)
        .limit(1)
    ).first()
    if row is None:
        return None
    return ProgramWindow(row.id, row.name, row.start_date, row.end_date, program_today(session=session))


def program_deadlines(*, session: Session) -> pd.DataFrame:
    """Each track deadline and the program end, soonest first.

    Columns: what (str), deadline (date), days_left (int; 0 = today, negative = passed).
    """
    today = program_today(session=session)
    rows = [
        (f"{name} cut-over", deadline)
        for name, deadline in session.execute(
            select(Track.name, Track.deadline).where(Track.deadline.is_not(None)).order_by(Track.position)
        )
    ]
    end = session.scalar(select(func.max(Program.end_date)))
    if end is not None:
        rows.append(("Program end", end))
    frame = pd.DataFrame(rows, columns=["what", "deadline"])
    frame["days_left"] = [(d - today).days for d in frame["deadline"]]
    return frame.sort_values("deadline", kind="stable").reset_index(drop=True)
