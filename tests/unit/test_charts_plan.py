"""Plan charts: which bars each item gets, slip colours, the done markers and the burn-up series."""

from __future__ import annotations

from datetime import date

import pandas as pd

from lockstep.charts.plan import ACTUAL_COLORS, MS_PER_DAY, plan_burnup_chart, plan_timeline

TODAY = date(2020, 5, 15)


def _items(*rows) -> pd.DataFrame:
    cols = ["id", "title", "status", "percent", "planned_start", "due_date", "done_date"]
    return pd.DataFrame(rows, columns=cols)


ITEMS = _items(
    ("A1", "On time", "done", 100, date(2020, 4, 1), date(2020, 4, 10), date(2020, 4, 8)),
    ("A2", "Late", "done", 100, date(2020, 4, 1), date(2020, 4, 20), date(2020, 5, 12)),
    ("A3", "Overdue <b>x</b>", "in_progress", 60, date(2020, 4, 15), date(2020, 5, 10), None),
    ("A4", "Going", "in_progress", 30, date(2020, 5, 1), date(2020, 5, 20), None),
    ("A5", "Not started", "not_started", 0, date(2020, 6, 1), date(2020, 6, 30), None),
    ("A6", "No due date", "not_started", 0, None, None, None),
)


def _traces(fig):
    return {t.name: t for t in fig.data}


def test_timeline_has_a_planned_bar_per_dated_item_and_actual_bars_by_slip():
    fig = plan_timeline(ITEMS, today=TODAY)
    t = _traces(fig)
    assert set(t) == {"Planned", "Done on time", "Done late", "Overdue", "In progress", "Done date"}
    assert len(t["Planned"].y) == 5  # A6 has no due date
    assert [y.split(" ·")[0] for y in t["Done late"].y] == ["A2"]
    assert [y.split(" ·")[0] for y in t["Overdue"].y] == ["A3"]
    assert [y.split(" ·")[0] for y in t["In progress"].y] == ["A4"]
    assert [y.split(" ·")[0] for y in t["Done on time"].y] == ["A1"]
    assert t["Done late"].marker.color == ACTUAL_COLORS["Done late"] != ACTUAL_COLORS["Done on time"]
    assert list(t["Done date"].x) == ["2020-04-08", "2020-05-12"]
    assert fig.layout.title.text and fig.layout.xaxis.title.text and fig.layout.yaxis.title.text


def test_actual_bars_run_to_done_date_or_today():
    t = _traces(plan_timeline(ITEMS, today=TODAY))
    # A2 late: 04-01 -> 05-12 = 41 days; A3 overdue: 04-15 -> today 05-15 = 30 days.
    assert t["Done late"].base[0] == "2020-04-01" and t["Done late"].x[0] == 41 * MS_PER_DAY
    assert t["Overdue"].base[0] == "2020-04-15" and t["Overdue"].x[0] == 30 * MS_PER_DAY
    # Planned A3: 04-15 -> due 05-10 = 25 days, so the slip shows as the actual bar running past it.
    planned = dict(zip(t["Planned"].y, t["Planned"].x, strict=True))
    assert planned[next(y for y in planned if y.startswith("A3"))] == 25 * MS_PER_DAY


def test_timeline_labels_do_not_carry_markup():
    labels = _traces(plan_timeline(ITEMS, today=TODAY))["Planned"].y
    assert any("&lt;b&gt;x&lt;/b&gt;" in y for y in labels)
    assert not any("<b>" in y for y in labels)


def test_timeline_says_when_there_is_nothing_to_show():
    empty = plan_timeline(ITEMS.iloc[0:0], today=TODAY)
    undated = plan_timeline(ITEMS.iloc[5:6], today=TODAY)
    assert not empty.data and "Nothing to show" in empty.layout.annotations[0].text
    assert not undated.data and "due date" in undated.layout.annotations[0].text


def test_burnup_series_follow_the_weekly_numbers():
    burnup = pd.DataFrame(
        {
            "label": ["W1 (Apr 1)", "W2 (Apr 8)", "W3 (Apr 15)"],
            "planned": [1, 3, 4],
            "done": [0.0, 2.0, float("nan")],
        }
    )
    t = _traces(plan_burnup_chart(burnup))
    assert list(t["Planned (due by week end)"].y) == [1, 3, 4]
    assert list(t["Done (by week end)"].y)[:2] == [0.0, 2.0]
    assert list(t["Planned (due by week end)"].x) == ["W1 (Apr 1)", "W2 (Apr 8)", "W3 (Apr 15)"]


def test_burnup_with_no_dated_items_is_an_empty_figure():
    burnup = pd.DataFrame({"label": ["W1 (Apr 1)"], "planned": [0], "done": [0.0]})
    fig = plan_burnup_chart(burnup)
    assert not fig.data and fig.layout.annotations


def test_window_keeps_far_off_due_dates_from_squashing_the_axis():
    far = pd.concat(
        [ITEMS, _items(("A9", "Next year", "not_started", 0, None, date(2021, 12, 31), None))],
        ignore_index=True,
    )
    fig = plan_timeline(far, today=TODAY, window=(date(2020, 4, 1), date(2020, 6, 30)))
    assert tuple(fig.layout.xaxis.range) == ("2020-03-29", "2020-07-05")
    assert len(_traces(fig)["Planned"].y) == 6  # still drawn, running off the edge
