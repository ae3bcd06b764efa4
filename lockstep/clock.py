"""Time in one place: naive UTC datetimes, ISO weeks, the program's "today"."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta


def utcnow() -> datetime:
    """Now, as a naive UTC datetime (how every timestamp is stored)."""
    return datetime.now(UTC).replace(tzinfo=None)


def week_start(d: date) -> date:
    """The Monday of the ISO week holding `d`."""
    return d - timedelta(days=d.weekday())


def week_label(monday: date) -> str:
    """ISO week label, e.g. '2020-W21'."""
    year, week, _ = monday.isocalendar()
    return f"{year}-W{week:02d}"


def parse_week(label: str) -> date:
    """The Monday of an ISO week label like '2020-W21'; ValueError names a bad label."""
    try:
        year_s, week_s = label.strip().upper().split("-W")
        return date.fromisocalendar(int(year_s), int(week_s), 1)
    except ValueError:
        raise ValueError(f"week {label!r} is not an ISO week like 2020-W21") from None


def week_end(monday: date) -> datetime:
    """The first instant after the ISO week that starts on `monday`."""
    return datetime.combine(monday + timedelta(days=7), datetime.min.time())
