"""Weekly charts for executives: stage mix, E2EE adoption, burn-up and the forecast.

Bars and lines show the current numbers of each closed week; a week whose numbers changed
after it closed (a back-dated event) is marked "*" and its reported value is in the hover.
"""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd
import plotly.graph_objects as go

from lockstep.charts import base_layout, empty_figure, stage_color, stage_label
from lockstep.charts.plan import plan_burnup_chart
from lockstep.forecast import Forecast

ACTUAL_COLOR = "#2e7d32"
PROJECTED_COLOR = "#1e88e5"
REPORTED_COLOR = "#9e9e9e"
DEADLINE_COLOR = "#e53935"
RESTATED_NOTE = "* restated: a back-dated event changed the week after it closed (hover shows both)"
SUBTITLE_FONT = {"size": 14, "color": "#37474f"}
# A projection months out would squash the weeks that happened into a sliver: draw it at
# most as far ahead as the history reaches back (within these bounds) and say where it ends.
MIN_PROJECTION_DAYS, MAX_PROJECTION_DAYS = 28, 182


def _subtitle(fig: go.Figure, title: str, subtitle: str) -> None:
    fig.update_layout(title={"text": title, "subtitle": {"text": subtitle, "font": SUBTITLE_FONT}},
                      margin={"t": 120})


def _slanted_weeks(fig: go.Figure) -> None:
    # Half-width charts: slanted week labels fit, given the room below the axis to show them.
    fig.update_xaxes(tickangle=-45)
    fig.update_layout(margin={"b": 100})


def _pct(value: float) -> str:
    return "" if pd.isna(value) else f"{value:.1f}%"


def week_title(monday: date) -> str:
    """How a week is named for people: 'Week 21, 2020 (2020-W21)'."""
    year, week, _ = monday.isocalendar()
    return f"Week {week}, {year} ({year}-W{week:02d})"


def stage_mix_chart(mix: pd.DataFrame, *, track_name: str) -> go.Figure:
    """Stacked bars of tenants per stage at each closed week's end (columns of stage_mix_by_week)."""
    title = f"{track_name}: tenants per stage at each week's end"
    if mix.empty:
        return empty_figure(title, "No closed weeks for this track yet.")
    weeks = list(dict.fromkeys(mix["week_label"]))
    fig = go.Figure()
    stages = mix.groupby("stage_code", sort=False)["position"].min().sort_values(kind="stable")
    for stage in stages.index:
        rows = mix[mix["stage_code"] == stage].set_index("week_label").reindex(weeks)
        current = rows["n_current"].fillna(0).astype(int)
        reported = rows["n_reported"].fillna(0).astype(int)
        fig.add_trace(
            go.Bar(
                name=stage_label(stage),
                x=weeks,
                y=current,
                marker={"color": stage_color(stage)},
                customdata=list(zip(reported, current - reported, strict=True)),
                hovertemplate="%{x} · "
                + stage_label(stage)
                + ": %{y:,} tenants (reported %{customdata[0]:,}, change %{customdata[1]:+,})<extra></extra>",
            )
        )
    base_layout(fig, title=title, x="Week (ISO)", y="Tenants", height=420)
    # Legend left to right in track order (plotly reverses it for stacked bars by default).
    # Shown with a single stage too (plotly hides a one-trace legend): the colour must be named.
    fig.update_layout(barmode="stack", bargap=0.25, showlegend=True, legend={"traceorder": "normal"})
    restated = mix.groupby("week_label", sort=False)["restated"].any()
    totals = mix.groupby("week_label", sort=False)["n_current"].sum()
    for week in [w for w in weeks if restated.get(w, False)]:
        fig.add_annotation(x=week, y=totals[week], text="*", showarrow=False, yanchor="bottom",
                           font={"size": 20, "color": DEADLINE_COLOR})
    if restated.any():
        _subtitle(fig, title, RESTATED_NOTE)
    return fig


def e2ee_adoption_chart(adoption: pd.DataFrame) -> go.Figure:
    """Share of paid-tier tenants with E2EE enabled per closed week (columns of e2ee_adoption_by_week)."""
    title = "Paid tiers: E2EE enabled, % of paid tenants"
    if adoption.empty or adoption["pct_current"].isna().all():
        return empty_figure(title, "No closed week has paid tenants on the E2EE track.")
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            name="Enabled (current)",
            x=adoption["week_label"],
            y=adoption["pct_current"],
            mode="lines+markers+text",
            # Only the newest value is written out: a label on every week would overlap.
            text=[""] * (len(adoption) - 1) + [_pct(adoption["pct_current"].iloc[-1])],
            textposition="top left",
            line={"color": stage_color("enabled"), "width": 3},
            customdata=list(zip(adoption["enabled_current"], adoption["paid_current"], strict=True)),
            hovertemplate="%{x}: %{y:.1f}% (%{customdata[0]:,} of %{customdata[1]:,} paid tenants)"
            "<extra></extra>",
        )
    )
    if adoption["restated"].any():
        fig.add_trace(
            go.Scatter(
                name="As reported when the week closed",
                x=adoption["week_label"],
                y=adoption["pct_reported"],
                mode="lines+markers",
                line={"color": REPORTED_COLOR, "dash": "dot"},
                hovertemplate="%{x}: reported %{y:.1f}%<extra></extra>",
            )
        )
    base_layout(fig, title=title, x="Week (ISO)", y="Paid tenants with E2EE enabled")
    top = max(10.0, float(adoption[["pct_current", "pct_reported"]].max().max()) * 1.25)
    fig.update_yaxes(range=[0, min(top, 105)], ticksuffix="%")
    _slanted_weeks(fig)
    return fig


def weekly_burnup_chart(burnup: pd.DataFrame) -> go.Figure:
    """Plan burn-up over the closed ISO weeks (columns of queries.weekly.plan_burnup)."""
    fig = plan_burnup_chart(burnup.assign(label=burnup["week_label"]))
    if not burnup.empty:
        fig.update_layout(xaxis_title="Week (ISO)")
        _slanted_weeks(fig)
    return fig


def forecast_chart(forecast: Forecast, *, track_name: str = "GCM enforced") -> go.Figure:
    """Actual % at the final stage per closed week, the projection at the current pace, and the deadline."""
    title = f"Forecast: {track_name}, % of tenants"
    if not forecast.history:
        return empty_figure(title, "No closed weeks yet: no forecast.")
    fig = go.Figure()
    hist = forecast.history
    fig.add_trace(
        go.Scatter(
            name="Actual (end of week)",
            x=[p.as_of.isoformat() for p in hist],
            y=[p.pct for p in hist],
            mode="lines+markers",
            line={"color": ACTUAL_COLOR, "width": 3},
            customdata=[[p.done, p.total] for p in hist],
            hovertemplate="%{x}: %{y:.1f}% (%{customdata[0]:,} of %{customdata[1]:,})<extra></extra>",
        )
    )
    last = forecast.last
    end = last.as_of
    if forecast.status == "projected":
        reach = (last.as_of - hist[0].as_of).days
        horizon = min(max(reach, MIN_PROJECTION_DAYS), MAX_PROJECTION_DAYS)
        end = min(forecast.projected, last.as_of + timedelta(days=horizon))
        span = (forecast.projected - last.as_of).days
        pct_at_end = last.pct + (100.0 - last.pct) * (end - last.as_of).days / span
        fig.add_trace(
            go.Scatter(
                name="Projected at the current pace",
                x=[last.as_of.isoformat(), end.isoformat()],
                y=[last.pct, pct_at_end],
                mode="lines+markers",
                line={"color": PROJECTED_COLOR, "dash": "dash", "width": 2},
                hovertemplate="%{x}: %{y:.1f}% projected<extra></extra>",
            )
        )
        if end < forecast.projected:
            fig.add_annotation(x=end.isoformat(), y=pct_at_end, xanchor="right", yanchor="bottom",
                               text=f"100% on {forecast.projected:%Y-%m-%d} →", showarrow=False,
                               font={"color": PROJECTED_COLOR})
    lo = hist[0].as_of - timedelta(days=4)
    hi = max(end, forecast.deadline or end) + timedelta(days=4)
    if forecast.deadline is not None:
        fig.add_shape(type="line", x0=forecast.deadline.isoformat(), x1=forecast.deadline.isoformat(),
                      y0=0, y1=1, yref="paper", line={"color": DEADLINE_COLOR, "width": 2, "dash": "dot"})
        fig.add_annotation(x=forecast.deadline.isoformat(), y=0.02, yref="paper", xanchor="left",
                           yanchor="bottom", text=f" deadline {forecast.deadline:%Y-%m-%d}", showarrow=False,
                           font={"color": DEADLINE_COLOR})
    base_layout(fig, title=title, x="Date (end of week)", y="Tenants at the final stage", height=420)
    _subtitle(fig, title, forecast.summary)
    fig.update_xaxes(type="date", range=[lo.isoformat(), hi.isoformat()])
    fig.update_yaxes(range=[0, 105], ticksuffix="%")
    return fig
