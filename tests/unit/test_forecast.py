"""The forecast: pace over the last closed weeks, the day 100% lands, against the deadline."""

from __future__ import annotations

import math
from datetime import date, timedelta

from lockstep.forecast import (
    PACE_UNIT,
    Forecast,
    WeekPoint,
    forecast_headline,
    forecast_milestones,
    format_pace,
    pace_per_week,
    project,
)

DEADLINE = date(2020, 5, 30)
W18 = date(2020, 4, 27)


def weeks(*done: int, total: int = 1000, start: date = W18) -> list[WeekPoint]:
    return [WeekPoint(start + timedelta(days=7 * i), d, total) for i, d in enumerate(done)]


def test_pace_is_the_average_gain_over_the_last_three_weeks():
    # Gains 100, 100, 200, 300: the last three average 200 a week.
    f = project(weeks(0, 100, 200, 400, 700), deadline=DEADLINE)
    assert f.status == "projected"
    assert f.pace == 200
    assert f.pace_weeks == 3
    # 300 left at 200/week = 10.5 days after Sunday 2020-05-31 (the last week's end), rounded up.
    assert f.last.as_of == date(2020, 5, 31)
    assert f.projected == date(2020, 6, 11)
    assert f.days_late == 12
    assert f.summary == "at 200 tenants/week: 100% on 2020-06-11, 12 days after the 2020-05-30 deadline"


def test_early_projection_says_before_the_deadline():
    f = project(weeks(0, 300, 600, 900, total=1000), deadline=DEADLINE)
    assert f.pace == 300
    # 100 left at 300/week: 2.3 days after Sunday 2020-05-24, rounded up to 3.
    assert f.projected == date(2020, 5, 27)
    assert f.days_late == -3
    assert f.summary.endswith("3 days before the 2020-05-30 deadline")


def test_fewer_weeks_than_the_window_use_what_there_is():
    f = project(weeks(100, 150), deadline=DEADLINE)
    assert (f.pace, f.pace_weeks) == (50, 1)


def test_a_week_nobody_closed_does_not_inflate_the_pace():
    history = [WeekPoint(W18, 0, 1000), WeekPoint(W18 + timedelta(days=21), 300, 1000)]
    f = project(history, deadline=DEADLINE)
    assert f.pace == 100
    assert f.pace_weeks == 3


def test_zero_pace_never_finishes():
    f = project(weeks(100, 400, 400, 400, 400), deadline=DEADLINE)
    assert f.status == "never"
    assert f.pace == 0
    assert f.projected is None and f.days_late is None
    assert "never reached at this pace" in f.summary
    assert f.summary.startswith("at 0.0 tenants/week over the last 3 week(s)")


def test_rollbacks_make_a_negative_pace_which_never_finishes():
    assert project(weeks(500, 480), deadline=DEADLINE).status == "never"


def test_already_done_reports_the_first_day_it_held():
    f = project(weeks(800, 1000, 990, 1000, 1000), deadline=DEADLINE)
    assert f.status == "done"
    # 100% first held from W21 (2020-05-18..24) onwards; the dip in W20 resets it.
    assert f.projected == date(2020, 5, 24)
    assert f.days_late == -6
    assert f.summary == "100% reached on 2020-05-24, 6 days before the 2020-05-30 deadline"


def test_no_weeks_and_one_week_have_no_pace():
    assert project([], deadline=DEADLINE).summary == "No closed weeks yet: no forecast"
    one = project(weeks(10), deadline=DEADLINE)
    assert one.status == "unknown" and one.pace is None
    assert "not enough weeks" in one.summary


def test_no_deadline_leaves_out_the_comparison():
    f = project(weeks(0, 500, total=1000), deadline=None)
    assert f.days_late is None
    assert f.summary == "at 500 tenants/week: 100% on 2020-05-17"


def test_points_are_sorted_and_percent_is_safe_on_empty_tracks():
    f = project(list(reversed(weeks(0, 100, 200))), deadline=DEADLINE)
    assert [p.done for p in f.history] == [0, 100, 200]
    assert WeekPoint(W18, 0, 0).pct == 0.0
    assert WeekPoint(W18, 1, 4).pct == 25.0


def test_pace_formatting():
    assert format_pace(1240.4) == "1,240"
    assert format_pace(2.25) == "2.2"
    assert format_pace(None) == "?"
    assert isinstance(project(weeks(1, 2), deadline=None), Forecast)


def test_the_bulk_is_dated_apart_from_the_long_tail():
    # 950 of 1000 done, gaining 5 a week: 95% is reached, 99% is 8 weeks out, 100% 10.
    f = project(weeks(935, 940, 945, 950), deadline=DEADLINE)
    assert f.pace == 5
    on95, projected95 = f.reached_on(95)
    assert (on95, projected95) == (f.last.as_of, False)
    on99, projected99 = f.reached_on(99)
    assert projected99 and on99 == f.last.as_of + timedelta(days=math.ceil(40 / 5 * 7))
    assert f.tail_after(99) == 10
    milestones = forecast_milestones(f)
    assert [m.label for m in milestones] == [
        "95% at GCM enforced (reached)",
        "99% at GCM enforced (projected)",
        "The last 10 tenants (100%, projected)",
    ]
    assert [m.on for m in milestones] == [on95, on99, f.projected]
    assert PACE_UNIT in forecast_headline(f) and "last 3 closed weeks" in forecast_headline(f)


def test_a_share_never_reached_at_this_pace_has_no_date():
    f = project(weeks(500, 500, 500), deadline=DEADLINE)
    assert f.status == "never" and f.reached_on(95) == (None, True)
    assert [m.on for m in forecast_milestones(f)] == [None, None, None]
    assert {m.missing for m in forecast_milestones(f)} == {"never"}


def test_one_pace_for_every_page():
    history = weeks(0, 100, 200, 400, 700)
    assert pace_per_week(history) == (200, 3)
    assert project(history, deadline=DEADLINE).pace == pace_per_week(history)[0]
    assert pace_per_week(history[:1]) == (None, 0)
