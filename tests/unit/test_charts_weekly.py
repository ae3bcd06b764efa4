"""Weekly charts: series, colours, totals, the restated marks and the forecast lines."""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd

from lockstep.charts import STAGE_COLORS
from lockstep.charts.weekly import (
    e2ee_adoption_chart,
    forecast_chart,
    stage_mix_chart,
    week_title,
    weekly_burnup_chart,
)
from lockstep.forecast import WeekPoint, project

W20, W21 = date(2020, 5, 11), date(2020, 5, 18)


def mix(restated_w21: bool = False) -> pd.DataFrame:
    rows = [
        (W20, "2020-W20", "legacy_cipher", 0, 60, 60),
        (W20, "2020-W20", "gcm_enforced", 3, 30, 30),
        (W20, "2020-W20", "blocked", 100, 10, 10),
        (W21, "2020-W21", "legacy_cipher", 0, 40, 39 if restated_w21 else 40),
        (W21, "2020-W21", "gcm_enabled", 2, 20, 21 if restated_w21 else 20),
        (W21, "2020-W21", "gcm_enforced", 3, 30, 30),
        (W21, "2020-W21", "blocked", 100, 10, 10),
    ]
    frame = pd.DataFrame(rows, columns=["week_start", "week_label", "stage_code", "position",
                                        "n_reported", "n_current"])
    frame["restated"] = frame["n_reported"] != frame["n_current"]
    return frame


def test_week_title():
    assert week_title(W21) == "Week 21, 2020 (2020-W21)"
    assert week_title(date(2021, 1, 4)) == "Week 1, 2021 (2021-W01)"


def test_stage_mix_stacks_stages_in_track_order_with_their_colours():
    fig = stage_mix_chart(mix(), track_name="AES-256-GCM encryption")
    assert [t.name for t in fig.data] == ["Legacy cipher", "GCM enabled", "GCM enforced", "Blocked"]
    assert [t.marker.color for t in fig.data] == [STAGE_COLORS[s] for s in
                                                 ("legacy_cipher", "gcm_enabled", "gcm_enforced", "blocked")]
    assert fig.layout.barmode == "stack"
    # A stage missing in a week is a zero bar, so every week totals its tenants.
    assert list(fig.data[1].y) == [0, 20]
    assert [sum(t.y[i] for t in fig.data) for i in range(2)] == [100, 100]
    assert fig.layout.title.text.startswith("AES-256-GCM encryption")
    assert fig.layout.xaxis.title.text and fig.layout.yaxis.title.text == "Tenants"
    assert not fig.layout.annotations


def test_stage_mix_marks_restated_weeks():
    fig = stage_mix_chart(mix(restated_w21=True), track_name="Encryption")
    assert [(a.x, a.text) for a in fig.layout.annotations] == [("2020-W21", "*")]
    assert "restated" in fig.layout.title.subtitle.text
    legacy = fig.data[0]
    assert list(legacy.y) == [60, 39]
    assert [tuple(c) for c in legacy.customdata] == [(60, 0), (40, -1)]


def test_empty_frames_say_so():
    empty = mix().iloc[0:0]
    assert "No closed weeks" in stage_mix_chart(empty, track_name="X").layout.annotations[0].text
    assert e2ee_adoption_chart(pd.DataFrame(columns=["week_label", "pct_current"])).layout.annotations
    assert "no forecast" in forecast_chart(project([], deadline=None)).layout.annotations[0].text


def adoption(restated: bool) -> pd.DataFrame:
    return pd.DataFrame({
        "week_start": [W20, W21],
        "week_label": ["2020-W20", "2020-W21"],
        "paid_reported": [200, 200],
        "enabled_reported": [10, 20],
        "pct_reported": [5.0, 10.0],
        "paid_current": [200, 200],
        "enabled_current": [10, 22 if restated else 20],
        "pct_current": [5.0, 11.0 if restated else 10.0],
        "restated": [False, restated],
    })


def test_e2ee_adoption_is_a_percent_line_with_the_reported_line_only_when_restated():
    fig = e2ee_adoption_chart(adoption(False))
    assert [t.name for t in fig.data] == ["Enabled (current)"]
    assert list(fig.data[0].y) == [5.0, 10.0]
    assert list(fig.data[0].text) == ["", "10.0%"]
    assert fig.data[0].line.color == STAGE_COLORS["enabled"]
    assert fig.layout.yaxis.ticksuffix == "%"
    assert fig.layout.yaxis.range[1] >= 10.0
    fig = e2ee_adoption_chart(adoption(True))
    assert [t.name for t in fig.data] == ["Enabled (current)", "As reported when the week closed"]
    assert list(fig.data[1].y) == [5.0, 10.0]


def test_burnup_uses_iso_week_labels():
    frame = pd.DataFrame({"week_start": [W20, W21], "week_label": ["2020-W20", "2020-W21"],
                          "planned": [3, 5], "done": [1.0, 2.0]})
    fig = weekly_burnup_chart(frame)
    assert [list(t.x) for t in fig.data] == [["2020-W20", "2020-W21"]] * 2
    assert [list(t.y) for t in fig.data] == [[3, 5], [1.0, 2.0]]
    assert fig.layout.xaxis.title.text == "Week (ISO)"


def test_forecast_draws_actual_projection_and_deadline():
    history = [WeekPoint(W20 - timedelta(days=7 * i), d, 1000) for i, d in enumerate((700, 500, 300, 100))]
    f = project(history, deadline=date(2020, 5, 30))
    fig = forecast_chart(f)
    actual, projected = fig.data
    assert list(actual.y) == [10.0, 30.0, 50.0, 70.0]
    assert actual.x[-1] == "2020-05-17"
    # 300 left at 200/week from Sunday 2020-05-17: 10.5 days, so 100% on 2020-05-28.
    assert list(projected.x) == ["2020-05-17", "2020-05-28"]
    assert list(projected.y) == [70.0, 100.0]
    assert fig.layout.shapes[0].x0 == "2020-05-30"
    assert fig.layout.title.subtitle.text == (
        "at 200 tenants/week: 100% on 2020-05-28, 2 days before the 2020-05-30 deadline")


def test_a_far_projection_is_cut_so_the_weeks_stay_readable():
    f = project([WeekPoint(W20, 0, 10_000), WeekPoint(W21, 10, 10_000)], deadline=date(2020, 5, 30))
    fig = forecast_chart(f)
    projected = fig.data[1]
    # One week of history: the line reaches the minimum four weeks ahead, and says where 100% lands.
    assert projected.x[1] == (date(2020, 5, 24) + timedelta(days=28)).isoformat()
    assert 0.1 < projected.y[1] < 1
    assert str(f.projected) in fig.layout.title.subtitle.text
    assert f"100% on {f.projected} →" in [a.text for a in fig.layout.annotations]
    long = [WeekPoint(W20 - timedelta(days=7 * i), 10 * (40 - i), 10_000) for i in range(40)]
    far = forecast_chart(project(long, deadline=None)).data[1]
    assert far.x[1] == (date(2020, 5, 17) + timedelta(days=182)).isoformat()


def test_no_pace_draws_no_projection():
    f = project([WeekPoint(W20, 10, 100), WeekPoint(W21, 10, 100)], deadline=date(2020, 5, 30))
    fig = forecast_chart(f)
    assert [t.name for t in fig.data] == ["Actual (end of week)"]
    assert "never" in fig.layout.title.subtitle.text
