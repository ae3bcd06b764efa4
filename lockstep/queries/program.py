"""The program itself: its window and the dashboard's "today"."""

from __future__ import annotations

from datetime import date

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from lockstep.clock import utcnow
from lockstep.config import get_settings
from lockstep.models import Program


def program_today(*, session: Session) -> date:
    """The dashboard's today: settings.as_of, else the real date capped to the program's end."""
    as_of = get_settings().as_of
    if as_of is not None:
        return as_of
    today = utcnow().date()
    end = session.scalar(select(func.max(Program.end_date)))
    return min(today, end) if end is not None else today
