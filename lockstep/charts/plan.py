"""Plan charts: the timeline of planned vs actual per item, and the burn-up by week."""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd
import plotly.graph_objects as go

from lockstep.charts import base_layout, empty_figure

PLANNED_COLOR = "#cfd8dc"
ACTUAL_COLORS = {
    "Done on time": "#2e7d32",
    "Done late": "#c62828",
    "Overdue": "#e53935",
    "In progress": "#1e88e5",
}
DONE_MARKER_COLOR = "#212121"
TODAY_COLOR = "#ff6f00"
MS_PER_DAY = 86_400_000


def plain(text: str) -> str:
    """Text safe for plotly labels, which read a subset of HTML (<b>, <br>): escape it."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _d(value) -> date | None:
    return None if value is None or pd.isna(value) else value


def actual_kind(row, today: date) -> str | None:
    """How an item's actual bar is drawn: done on time/late, overdue, in progress, or None (no bar)."""
    due, done = _d(row["due_date"]), _d(row["done_date"])
    if row["status"] == "done":
        if due is not None and done is not None and done > due:
            return "Done late"
        return "Done on time"
    if due is not None and due < today:
        return "Overdue"
    if row["status"] == "not_started":
        return None
    return "In progress"


def _label(row) -> str:
    title = row["title"] if len(row["title"]) <= 48 else row["title"][:45] + "..."
    return plain(f"{row['id']} · {title}")


def _span_ms(start: date, end: date) -> int:
    # A same-day bar would be invisible; draw it a day long.
    return max((end - start).days, 1) * MS_PER_DAY


def plan_timeline(items: pd.DataFrame, *, today: date, window: tuple[date, date] | None = None) -> go.Figure:
    """Planned (start→due, grey) vs actual (start→done or today, coloured by slip) per item.

    `items` has the columns of lockstep.queries.plan.plan_items. Items without a due date
    are left out (there is nothing to compare). A diamond marks each done date; an orange
    line marks today. With `window` (program start, end) the x axis shows that window
    (and today) so a few far-off due dates do not squash it; later bars run off the edge.
    """
    title = "Timeline: planned vs actual"
    if items.empty:
        return empty_figure(title)
    dated = items[items["due_date"].notna()].copy()
    if dated.empty:
        return empty_figure(title, "None of these items has a due date.")
    dated = dated.sort_values(["due_date", "id"], kind="stable")
    for col in ("planned_start", "due_date", "done_date"):
        dated[col] = pd.Series([_d(v) for v in dated[col]], index=dated.index, dtype=object)
    # Without a planned start the planned bar is just the due day.
    dated["start"] = [s or d for s, d in zip(dated["planned_start"], dated["due_date"], strict=True)]
    dated["label"] = [_label(r) for _, r in dated.iterrows()]
    fig = go.Figure()
    fig.add_trace(
        go.Bar(
            name="Planned",
            y=dated["label"],
            base=[s.isoformat() for s in dated["start"]],
            x=[_span_ms(s, d) for s, d in zip(dated["start"], dated["due_date"], strict=True)],
            orientation="h",
            width=0.8,
            marker={"color": PLANNED_COLOR},
            customdata=[[str(s), str(d)] for s, d in zip(dated["start"], dated["due_date"], strict=True)],
            hovertemplate="%{y}<br>planned %{customdata[0]} → %{customdata[1]}<extra></extra>",
        )
    )
    kinds = [actual_kind(r, today) for _, r in dated.iterrows()]
    for kind, color in ACTUAL_COLORS.items():
        rows = dated[[k == kind for k in kinds]]
        if rows.empty:
            continue
        ends = [done if kind.startswith("Done") and done is not None else today for done in rows["done_date"]]
        starts = [min(s, e) for s, e in zip(rows["start"], ends, strict=True)]
        fig.add_trace(
            go.Bar(
                name=kind,
                y=rows["label"],
                base=[s.isoformat() for s in starts],
                x=[_span_ms(s, e) for s, e in zip(starts, ends, strict=True)],
                orientation="h",
                width=0.35,
                marker={"color": color},
                customdata=[[str(e), int(p)] for e, p in zip(ends, rows["percent"], strict=True)],
                hovertemplate="%{y}<br>"
                + kind.lower()
                + " to %{customdata[0]} (%{customdata[1]}%)<extra></extra>",
            )
        )
    done_rows = dated[dated["done_date"].notna() & (dated["status"] == "done")]
    if not done_rows.empty:
        fig.add_trace(
            go.Scatter(
                name="Done date",
                y=done_rows["label"],
                x=[d.isoformat() for d in done_rows["done_date"]],
                mode="markers",
                marker={"symbol": "diamond", "size": 9, "color": DONE_MARKER_COLOR},
                hovertemplate="%{y}<br>done %{x}<extra></extra>",
            )
        )
    fig.add_shape(
        type="line",
        x0=today.isoformat(),
        x1=today.isoformat(),
        y0=0,
        y1=1,
        yref="paper",
        line={"color": TODAY_COLOR, "width": 2, "dash": "dot"},
    )
    fig.add_annotation(
        x=today.isoformat(),
        y=1,
        yref="paper",
        text="today",
        showarrow=False,
        yanchor="bottom",
        font={"color": TODAY_COLOR},
    )
    base_layout(fig, title=title, x="Date", y="Plan item", height=max(360, 110 + 26 * len(dated)))
    fig.update_layout(barmode="overlay", bargap=0.2)
    fig.update_xaxes(type="date")
    # First due at the top, like a plan read down the page.
    fig.update_yaxes(autorange="reversed", tickfont={"size": 11})
    if window is not None:
        lo, hi = min(window[0], today), max(window[1], today)
    else:
        lo = min(dated["start"].min(), today)
        hi = max(dated["due_date"].max(), today, *(d for d in dated["done_date"] if d is not None))
    lo, hi = lo - timedelta(days=3), hi + timedelta(days=5)
    fig.update_xaxes(range=[lo.isoformat(), hi.isoformat()])
    # A bar that starts after the right edge would leave its row empty: mark it at the edge
    # with its due date instead, so every row shows something.
    beyond = dated[[s > hi for s in dated["start"]]]
    if not beyond.empty:
        edge = (hi - timedelta(days=1)).isoformat()
        fig.add_trace(
            go.Scatter(
                name="Later (after this window)",
                y=beyond["label"],
                x=[edge] * len(beyond),
                mode="markers+text",
                marker={"symbol": "triangle-right", "size": 10, "color": PLANNED_COLOR,
                        "line": {"color": "#78909c", "width": 1}},
                text=[f"due {d:%d %b %Y} " for d in beyond["due_date"]],
                textposition="middle left",
                textfont={"size": 10, "color": "#546e7a"},
                hovertemplate="%{y}<br>%{text}<extra></extra>",
            )
        )
    return fig


def plan_burnup_chart(burnup: pd.DataFrame) -> go.Figure:
    """Cumulative planned vs done items per program week (columns of plan_burnup)."""
    title = "Burn-up: items planned vs done, by week"
    if burnup.empty or (burnup["planned"].sum() == 0 and burnup["done"].fillna(0).sum() == 0):
        return empty_figure(title, "No dated plan items yet.")
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            name="Planned (due by week end)",
            x=burnup["label"],
            y=burnup["planned"],
            mode="lines+markers",
            line={"color": "#90a4ae", "dash": "dash", "width": 2},
        )
    )
    fig.add_trace(
        go.Scatter(
            name="Done (by week end)",
            x=burnup["label"],
            y=burnup["done"],
            mode="lines+markers",
            line={"color": "#2e7d32", "width": 3},
            connectgaps=False,
        )
    )
    base_layout(fig, title=title, x="Program week", y="Items (cumulative)")
    fig.update_yaxes(rangemode="tozero")
    # A burn-up rises to the right, so its top left is empty: the legend goes there, inside
    # the plot, and never wraps into the title on a half-width chart.
    fig.update_layout(legend={"orientation": "v", "x": 0.01, "y": 0.99, "xanchor": "left", "yanchor": "top",
                              "bgcolor": "rgba(255,255,255,0.8)"}, margin={"t": 60})
    return fig
