"""Rollout and E2EE charts: series, totals, colours, order, and saying so when there is nothing."""

from __future__ import annotations

from datetime import date, datetime

import pandas as pd

from lockstep.charts import STAGE_COLORS
from lockstep.charts.e2ee import adoption_by_tier_figure, blockers_figure
from lockstep.charts.rollout import stage_funnel_figure, stage_mix_by_week_figure, stage_timeline_figure

ENC = ["legacy_cipher", "clients_upgraded", "gcm_enabled", "gcm_enforced"]


def _funnel(ns):
    stages = [*ENC, "blocked", "rolled_back"]
    return pd.DataFrame({"stage": stages, "is_side": [False] * 4 + [True] * 2, "n": ns})


def _is_empty(fig) -> bool:
    return not fig.data and fig.layout.annotations


def test_funnel_ordered_and_side_stages_in_their_own_panels():
    fig = stage_funnel_figure(_funnel([5, 10, 20, 40, 3, 2]), title="Encryption")
    assert fig.layout.title.text == "Encryption"
    assert [t.name for t in fig.data] == [
        "Legacy cipher",
        "Clients upgraded",
        "GCM enabled",
        "GCM enforced",
        "Blocked",
        "Rolled back",
    ]
    assert sum(t.x[0] for t in fig.data) == 80
    assert {t.xaxis for t in fig.data[:4]} == {"x"} and {t.xaxis for t in fig.data[4:]} == {"x2"}
    assert fig.data[2].marker.color == STAGE_COLORS["gcm_enabled"]
    assert fig.data[3].text[0] == "40 (50.0%)" and fig.data[5].text[0] == "2 (2.5%)"
    assert fig.layout.xaxis.title.text == "Tenants" and fig.layout.yaxis.title.text == "Stage"


def test_funnel_with_no_tenants_says_so():
    assert _is_empty(stage_funnel_figure(_funnel([0] * 6), title="Encryption"))
    assert _is_empty(stage_funnel_figure(_funnel([0] * 6).iloc[0:0], title="Encryption"))


def test_stage_mix_stacks_closed_weeks_then_now_in_stage_order():
    df = pd.DataFrame(
        {
            "week_start": [date(2020, 5, 11), date(2020, 5, 11), date(2020, 5, 4), None, None],
            "week": ["2020-W20", "2020-W20", "2020-W19", "now", "now"],
            "stage": ["gcm_enabled", "legacy_cipher", "legacy_cipher", "gcm_enforced", "legacy_cipher"],
            "n": [7, 3, 10, 9, 1],
        }
    )
    fig = stage_mix_by_week_figure(df, title="Mix", stage_order=ENC)
    assert fig.layout.barmode == "stack"
    assert [t.name for t in fig.data] == ["Legacy cipher", "GCM enabled", "GCM enforced"]
    assert list(fig.data[0].x) == ["2020-W19", "2020-W20", "now"]
    assert list(fig.data[0].y) == [10, 3, 1] and list(fig.data[1].y) == [0, 7, 0]
    assert sum(sum(t.y) for t in fig.data) == int(df["n"].sum())
    assert fig.layout.xaxis.title.text == "ISO week" and fig.layout.yaxis.title.text == "Tenants"


def test_stage_mix_empty_says_so():
    df = pd.DataFrame(columns=["week_start", "week", "stage", "n"])
    assert _is_empty(stage_mix_by_week_figure(df, title="Mix", stage_order=ENC))


def test_timeline_has_a_panel_per_track_with_stages_in_order():
    events = pd.DataFrame(
        {
            "occurred_at": [
                datetime(2020, 4, 2),
                datetime(2020, 5, 1),
                datetime(2020, 5, 2),
                datetime(2020, 5, 3),
            ],
            "track": ["encryption", "encryption", "e2ee", "encryption"],
            "stage": ["legacy_cipher", "gcm_enabled", "eligible", "blocked"],
        }
    )
    order = {"encryption": ["blocked", "rolled_back", *ENC], "e2ee": ["blocked", "rolled_back", "eligible"]}
    fig = stage_timeline_figure(
        events, title="T", stage_order=order, track_names={"encryption": "Encryption"}
    )
    assert [t.name for t in fig.data] == ["Encryption", "e2ee"]
    assert list(fig.data[0].y) == ["Legacy cipher", "GCM enabled", "Blocked"]
    assert fig.data[0].line.shape == "hv"
    assert list(fig.data[0].marker.color) == [
        STAGE_COLORS[s] for s in ("legacy_cipher", "gcm_enabled", "blocked")
    ]
    assert list(fig.layout.yaxis.categoryarray)[0] == "Blocked"
    assert _is_empty(stage_timeline_figure(events.iloc[0:0], title="T", stage_order=order))


def test_adoption_by_tier_groups_stages_within_tiers():
    df = pd.DataFrame(
        {
            "tier": ["pro", "pro", "business"],
            "tier_name": ["Pro", "Pro", "Business"],
            "stage": ["enabled", "eligible", "pilot"],
            "n": [4, 6, 2],
        }
    )
    fig = adoption_by_tier_figure(
        df, title="By tier", stage_order=["eligible", "pilot", "enabled", "blocked"]
    )
    assert fig.layout.barmode == "group"
    assert [t.name for t in fig.data] == ["Eligible", "Pilot", "Enabled"]
    assert list(fig.data[0].x) == ["Pro", "Business"] and list(fig.data[0].y) == [6, 0]
    assert fig.data[2].marker.color == STAGE_COLORS["enabled"]
    assert _is_empty(adoption_by_tier_figure(df.iloc[0:0], title="By tier", stage_order=[]))


def test_blockers_ranked_largest_on_top():
    df = pd.DataFrame({"name": ["Web client", "Cloud recording"], "tenants": [3, 9]})
    fig = blockers_figure(df, title="Blockers")
    assert list(fig.data[0].y) == ["Cloud recording", "Web client"] and list(fig.data[0].x) == [9, 3]
    assert fig.layout.yaxis.autorange == "reversed"
    assert _is_empty(blockers_figure(df.iloc[0:0], title="Blockers"))


def test_small_counts_tick_at_whole_tenants():
    # 3 blocked and 2 rolled back: plotly alone would tick the side panel at 0.5 tenant.
    fig = stage_funnel_figure(_funnel([5, 10, 20, 40, 3, 2]), title="Encryption")
    assert fig.layout.xaxis2.dtick == 1 and fig.layout.xaxis2.tickformat == ","
    # Large counts keep plotly's own steps, with thousands separators.
    big = stage_funnel_figure(_funnel([500, 1000, 2000, 4000, 3, 2]), title="Encryption")
    assert big.layout.xaxis.dtick is None and big.layout.xaxis.tickformat == ","
