"""Overview chart: one track's stage mix a week ago and now, side by side."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from lockstep.charts import base_layout, empty_figure, stage_color, whole_counts

WEEK_AGO, NOW = "A week ago", "Now"


def stage_mix_week_over_week(counts: pd.DataFrame, *, title: str) -> go.Figure:
    """Two stacked horizontal bars (a week ago, now) of tenants per stage, in stage order.

    `counts` has the columns of lockstep.queries.overview.StageMix.counts; one trace per
    stage, coloured as on every page.
    """
    if counts.empty or (counts["n"].sum() == 0 and counts["n_week_ago"].sum() == 0):
        return empty_figure(title, "No tenants on this track yet.")
    fig = go.Figure()
    for _, row in counts.sort_values("position").iterrows():
        if row["n"] == 0 and row["n_week_ago"] == 0:
            continue
        fig.add_trace(
            go.Bar(
                name=str(row["label"]),
                y=[WEEK_AGO, NOW],
                x=[int(row["n_week_ago"]), int(row["n"])],
                orientation="h",
                marker={"color": stage_color(row["stage"])},
                hovertemplate="%{y}: %{x:,} tenants<extra>" + str(row["label"]) + "</extra>",
            )
        )
    base_layout(fig, title=title, x="Tenants", y="", height=260)
    fig.update_layout(
        barmode="stack", legend_traceorder="normal", margin={"l": 100, "r": 20, "t": 90, "b": 50}
    )
    fig.update_yaxes(categoryorder="array", categoryarray=[NOW, WEEK_AGO])
    return whole_counts(fig, axis="x", largest=float(max(counts["n"].sum(), counts["n_week_ago"].sum())))
