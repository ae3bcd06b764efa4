"""Rollout charts: the stage funnel, the stage mix week by week, one tenant's timeline."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from lockstep.charts import base_layout, empty_figure, stage_color, stage_label, whole_counts


def stage_funnel_figure(df: pd.DataFrame, *, title: str) -> go.Figure:
    """Tenants now at each stage: ordered stages top to bottom, side stages in their own panel.

    Expects columns stage, is_side, n (as `queries.rollout.stage_funnel` returns).
    """
    if df.empty or int(df["n"].sum()) == 0:
        return empty_figure(title)
    ordered = df[~df["is_side"]]
    side = df[df["is_side"]]
    total = int(df["n"].sum())
    fig = make_subplots(
        rows=1,
        cols=2,
        column_widths=[0.72, 0.28],
        horizontal_spacing=0.16,
        subplot_titles=("Ordered stages", "Side stages"),
    )
    for col, part in ((1, ordered), (2, side)):
        for row in part.itertuples(index=False):
            n = int(row.n)
            fig.add_trace(
                go.Bar(
                    x=[n],
                    y=[stage_label(row.stage)],
                    orientation="h",
                    name=stage_label(row.stage),
                    marker_color=stage_color(row.stage),
                    text=[f"{n:,} ({n / total:.1%})"],
                    textposition="auto",
                    showlegend=False,
                    hovertemplate="%{y}: %{x:,} tenants<extra></extra>",
                ),
                row=1,
                col=col,
            )
        # First stage on top, as a funnel reads.
        fig.update_yaxes(autorange="reversed", row=1, col=col)
        fig.update_xaxes(title_text="Tenants", row=1, col=col)
        whole_counts(fig, axis="x", largest=float(part["n"].max()) if len(part) else 0, row=1, col=col)
    base_layout(fig, title=title, x="Tenants", y="Stage", height=360)
    fig.update_yaxes(title_text="Stage", row=1, col=1)
    fig.update_layout(bargap=0.25)
    return fig


def _week_order(df: pd.DataFrame) -> list[str]:
    """Week labels by week_start, with the live counts (no week_start) last."""
    pairs = df[["week_start", "week"]].drop_duplicates("week")
    closed = sorted((ws, w) for ws, w in pairs.itertuples(index=False) if not pd.isna(ws))
    live = [w for ws, w in pairs.itertuples(index=False) if pd.isna(ws)]
    return [w for _, w in closed] + live


def stage_bars(
    df: pd.DataFrame, *, by: str, categories: Sequence[str], stage_order: Sequence[str]
) -> go.Figure:
    """One bar trace per stage (in `stage_order`, coloured per stage) over the `by` categories.

    Expects columns `by`, stage, n; a category missing for a stage counts as zero.
    """
    pivot = df.pivot_table(index=by, columns="stage", values="n", aggfunc="sum", fill_value=0)
    pivot = pivot.reindex(list(categories), fill_value=0)
    stages = [s for s in stage_order if s in pivot.columns] + [
        s for s in pivot.columns if s not in stage_order
    ]
    fig = go.Figure()
    for stage in stages:
        fig.add_trace(
            go.Bar(
                x=list(categories),
                y=[int(v) for v in pivot[stage]],
                name=stage_label(stage),
                marker_color=stage_color(stage),
                hovertemplate=f"{stage_label(stage)}: %{{y:,}}<extra>%{{x}}</extra>",
            )
        )
    return fig


def stage_mix_by_week_figure(df: pd.DataFrame, *, title: str, stage_order: Sequence[str]) -> go.Figure:
    """Stacked bars of tenants per stage for each closed week and now.

    Expects columns week_start (empty for now), week, stage, n; `stage_order` is the
    track's stages, first to last.
    """
    if df.empty or int(df["n"].sum()) == 0:
        return empty_figure(title)
    weeks = _week_order(df)
    fig = stage_bars(df, by="week", categories=weeks, stage_order=stage_order)
    base_layout(fig, title=title, x="ISO week", y="Tenants")
    # Plotly reverses a stacked chart's legend by default; keep it in stage order.
    fig.update_layout(barmode="stack", showlegend=True, legend_traceorder="normal")  # one stage too
    fig.update_xaxes(type="category", categoryorder="array", categoryarray=weeks)
    return whole_counts(fig, axis="y", largest=float(df.groupby("week")["n"].sum().max()))


def stage_timeline_figure(
    events: pd.DataFrame,
    *,
    title: str,
    stage_order: Mapping[str, Sequence[str]],
    track_names: Mapping[str, str] | None = None,
) -> go.Figure:
    """One tenant's stage over time, a step line per track (one panel each).

    Expects columns occurred_at, track, stage; `stage_order` maps a track to its stages
    bottom to top (side stages first, then ordered stages first to last).
    """
    if events.empty:
        return empty_figure(title, "No events recorded for this tenant yet.")
    tracks = [t for t in stage_order if t in set(events["track"])]
    tracks += sorted(set(events["track"]) - set(tracks))
    names = track_names or {}
    fig = make_subplots(
        rows=len(tracks),
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.12,
        subplot_titles=[names.get(t, t) for t in tracks],
    )
    for i, track in enumerate(tracks, start=1):
        part = events[events["track"] == track].sort_values("occurred_at", kind="stable")
        labels = [stage_label(s) for s in part["stage"]]
        fig.add_trace(
            go.Scatter(
                x=part["occurred_at"],
                y=labels,
                mode="lines+markers",
                line={"shape": "hv", "color": "#90a4ae"},
                marker={"size": 11, "color": [stage_color(s) for s in part["stage"]]},
                name=names.get(track, track),
                showlegend=False,
                hovertemplate="%{y}<br>%{x|%Y-%m-%d %H:%M}<extra></extra>",
            ),
            row=i,
            col=1,
        )
        order = [stage_label(s) for s in stage_order.get(track, [])] or sorted(set(labels))
        fig.update_yaxes(
            type="category",
            categoryorder="array",
            categoryarray=order,
            range=[-0.5, len(order) - 0.5],
            title_text="Stage",
            row=i,
            col=1,
        )
    base_layout(fig, title=title, x="When (UTC)", y="Stage", height=max(300, 230 * len(tracks) + 80))
    # Panels share the time axis: label it once, under the last panel, not over the next title.
    fig.update_xaxes(title_text=None)
    fig.update_xaxes(title_text="When (UTC)", row=len(tracks), col=1)
    return fig
