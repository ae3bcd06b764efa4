"""E2EE charts: adoption by tier and what holds paid tenants back."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import plotly.graph_objects as go

from lockstep.charts import base_layout, empty_figure, stage_color, whole_counts
from lockstep.charts.rollout import stage_bars


def adoption_by_tier_figure(df: pd.DataFrame, *, title: str, stage_order: Sequence[str]) -> go.Figure:
    """Grouped bars: tenants per stage within each tier.

    Expects columns tier_name, stage, n (tiers in display order); `stage_order` orders the bars.
    """
    if df.empty or int(df["n"].sum()) == 0:
        return empty_figure(title)
    tiers = list(dict.fromkeys(df["tier_name"]))
    fig = stage_bars(df, by="tier_name", categories=tiers, stage_order=stage_order)
    base_layout(fig, title=title, x="Tier", y="Tenants")
    fig.update_layout(barmode="group", showlegend=True)  # named even when one stage is present
    return whole_counts(fig, axis="y", largest=float(df["n"].max()))


def blockers_figure(df: pd.DataFrame, *, title: str) -> go.Figure:
    """Horizontal bars: blocking features by how many not-yet-enabled tenants use each, largest on top.

    Expects columns name, tenants.
    """
    if df.empty or int(df["tenants"].sum()) == 0:
        return empty_figure(title, "No feature in use holds these tenants back.")
    ranked = df.sort_values("tenants", ascending=False, kind="stable")
    fig = go.Figure(
        go.Bar(
            x=[int(v) for v in ranked["tenants"]],
            y=list(ranked["name"]),
            orientation="h",
            name="Tenants held back",
            marker_color=stage_color("blocked"),
            text=[f"{int(v):,}" for v in ranked["tenants"]],
            textposition="auto",
            hovertemplate="%{y}: %{x:,} tenants<extra></extra>",
        )
    )
    base_layout(
        fig,
        title=title,
        x="Tenants not yet enabled that use it",
        y="Feature",
        height=max(300, 45 * len(ranked) + 140),
    )
    fig.update_yaxes(autorange="reversed")
    return whole_counts(fig, axis="x", largest=float(ranked["tenants"].max()))
