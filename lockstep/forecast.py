"""When will every tenant be done? Pure arithmetic over closed weeks, no database.

The pace is the average number of tenants reaching the final stage per week over the
last few closed weeks; the projection extends that pace from the last closed week to
100% and compares the day it lands on with the track's deadline.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta

PACE_WEEKS = 3
# The one name and definition of a pace, on every page that shows one (Rollout, Weekly).
PACE_UNIT = "tenants/week"
PACE_DEFINITION = (
    f"net gain in tenants at the stage or later per week, averaged over the last {PACE_WEEKS} "
    "closed weeks"
)
# The bulk of a track is done long before its last few tenants: show these, and the tail apart.
BULK_SHARES = (95, 99)


@dataclass(frozen=True)
class WeekPoint:
    """Tenants at the final stage, out of all tenants on the track, at the end of one week."""

    week_start: date
    done: int
    total: int

    @property
    def as_of(self) -> date:
        """The week's last day (its counts hold at the end of that Sunday)."""
        return self.week_start + timedelta(days=6)

    @property
    def pct(self) -> float:
        """Share done, in percent (0 when the track has no tenants)."""
        return 100.0 * self.done / self.total if self.total else 0.0


@dataclass(frozen=True)
class Forecast:
    """Pace, projected completion and how it compares with the deadline.

    status: "done" (100% reached, `projected` is the first day it held), "projected"
    (reached on `projected` at this pace), "never" (pace zero or negative) or "unknown"
    (fewer than two closed weeks, so no pace).
    """

    history: tuple[WeekPoint, ...]
    deadline: date | None
    status: str
    pace: float | None = None
    pace_weeks: int = 0
    projected: date | None = None

    @property
    def days_late(self) -> int | None:
        """Days the projection lands after the deadline (negative: early); None when unknown."""
        if self.projected is None or self.deadline is None:
            return None
        return (self.projected - self.deadline).days

    @property
    def last(self) -> WeekPoint | None:
        """The newest closed week the forecast starts from."""
        return self.history[-1] if self.history else None

    @property
    def summary(self) -> str:
        """One sentence an executive reads: pace, the day 100% is reached, against the deadline."""
        if self.status == "unknown":
            if not self.history:
                return "No closed weeks yet: no forecast"
            return "Only one closed week: not enough weeks yet to measure a pace"
        if self.status == "done":
            return f"100% reached on {self.projected:%Y-%m-%d}{self._against_deadline()}"
        pace = f"at {format_pace(self.pace)} {PACE_UNIT}"
        if self.status == "never":
            return f"{pace} over the last {self.pace_weeks} week(s): 100% is never reached at this pace"
        return f"{pace}: 100% on {self.projected:%Y-%m-%d}{self._against_deadline()}"

    def reached_on(self, share: float) -> tuple[date | None, bool]:
        """When `share` percent of tenants are (or were) at the final stage: (date, projected).

        A share already reached gives the first closed week's end it held at, projected False;
        otherwise the day the pace gets there, projected True; (None, True) when no pace
        gets there (unknown or never).
        """
        for point in self.history:
            if point.total and point.done * 100 >= share * point.total:
                return point.as_of, False
        last = self.last
        if last is None or self.pace is None or self.pace <= 0 or self.status != "projected":
            return None, True
        target = math.ceil(last.total * share / 100)
        return last.as_of + timedelta(days=math.ceil((target - last.done) / self.pace * 7)), True

    def tail_after(self, share: float) -> int:
        """Tenants still short of the final stage once `share` percent are there: the long tail."""
        last = self.last
        if last is None or not last.total:
            return 0
        return max(0, min(last.total - last.done, last.total - math.ceil(last.total * share / 100)))

    def _against_deadline(self) -> str:
        late = self.days_late
        if late is None:
            return ""
        if late == 0:
            return f", on the {self.deadline:%Y-%m-%d} deadline"
        days = f"{abs(late)} day{'s' if abs(late) != 1 else ''}"
        return f", {days} {'after' if late > 0 else 'before'} the {self.deadline:%Y-%m-%d} deadline"


def format_pace(pace: float | None) -> str:
    """A pace for people: whole tenants when large, one decimal when small."""
    if pace is None:
        return "?"
    return f"{pace:,.0f}" if abs(pace) >= 10 else f"{pace:,.1f}"


def pace_per_week(history: Sequence[WeekPoint], *, window: int = PACE_WEEKS) -> tuple[float | None, int]:
    """The pace (see PACE_DEFINITION) over the last `window` closed weeks: (tenants/week, weeks used).

    None when fewer than two weeks are closed. Measured in days, not in points, so a week
    nobody closed does not shrink the window.
    """
    points = sorted(history, key=lambda p: p.week_start)
    if len(points) < 2:
        return None, 0
    last, base = points[-1], points[-1 - min(window, len(points) - 1)]
    weeks = (last.week_start - base.week_start).days / 7
    return (last.done - base.done) / weeks, round(weeks)


def project(history: Sequence[WeekPoint], *, deadline: date | None, window: int = PACE_WEEKS) -> Forecast:
    """Forecast from closed weeks in time order: pace over the last `window` weeks, projected to 100%."""
    points = tuple(sorted(history, key=lambda p: p.week_start))
    if not points:
        return Forecast(points, deadline, "unknown")
    last = points[-1]
    if last.total and last.done >= last.total:
        first = len(points) - 1
        # The day 100% was first reached and held since.
        while first > 0 and points[first - 1].done >= points[first - 1].total:
            first -= 1
        return Forecast(points, deadline, "done", projected=points[first].as_of)
    if len(points) < 2:
        return Forecast(points, deadline, "unknown")
    pace, used = pace_per_week(points, window=window)
    if pace <= 0:
        return Forecast(points, deadline, "never", pace=pace, pace_weeks=used)
    days = math.ceil((last.total - last.done) / pace * 7)
    return Forecast(points, deadline, "projected", pace=pace, pace_weeks=used,
                    projected=last.as_of + timedelta(days=days))


@dataclass(frozen=True)
class Milestone:
    """One dated step of a forecast as a page shows it: '95% at GCM enforced (projected)' on a day."""

    label: str
    on: date | None
    missing: str
    help: str


def forecast_milestones(forecast: Forecast, *, stage: str = "GCM enforced") -> list[Milestone]:
    """95%, 99% and the tail (100%): when each is (or was) reached, as three headline numbers.

    A few stuck tenants push 100% far out while nearly everyone is done, so the bulk comes
    first and the last tenants are counted and dated on their own.
    """
    from lockstep.labels import fmt_int  # pure too; imported here to keep this module's top light

    out = []
    missing = "never" if forecast.status == "never" else "unknown"
    for share in BULK_SHARES:
        on, projected = forecast.reached_on(share)
        when = "" if on is None else " (projected)" if projected else " (reached)"
        out.append(Milestone(f"{share}% at {stage}{when}", on, missing,
                             f"When {share}% of tenants are at {stage}; projections use the pace: "
                             f"{PACE_DEFINITION}"))
    tail = forecast.tail_after(BULK_SHARES[-1])
    if forecast.status == "done":
        out.append(
            Milestone(f"100% at {stage} (reached)", forecast.projected, missing, "Every tenant is there")
        )
    else:
        out.append(Milestone(
            f"The last {fmt_int(tail)} tenants (100%, projected)", forecast.projected, missing,
            f"The long tail after {BULK_SHARES[-1]}%: when the last tenants reach {stage} at the same pace",
        ))
    return out


def forecast_headline(forecast: Forecast, *, stage: str = "GCM enforced") -> str:
    """The pace behind the forecast in one sentence, named as on every page that shows a pace."""
    if forecast.status == "unknown":
        return forecast.summary + "."
    if forecast.status == "done":
        return f"Every tenant is at {stage}."
    return (f"Pace: {format_pace(forecast.pace)} {PACE_UNIT} reaching {stage} ({PACE_DEFINITION}); "
            "the dates above extend it.")
