"""Pure chart builders: DataFrame -> plotly Figure. No database, no streamlit.

Every chart has a title and labelled axes, uses the same colour for the same stage on
every page, and says so plainly when there is nothing to show.
"""

from __future__ import annotations

import plotly.graph_objects as go
import plotly.io as pio

# Every chart uses the plotly_white template. Set as the default rather than per figure:
# `template=` on a figure copies the whole template object (12-50 ms per chart, a quarter of
# a page's render), while the default is applied as the figure is serialised, at no cost.
# The figure JSON Streamlit sends is the same either way.
pio.templates.default = "plotly_white"

# One colour per stage, everywhere. Later stages are greener; side stages stand out.
STAGE_COLORS: dict[str, str] = {
    "legacy_cipher": "#9e9e9e",
    "clients_upgraded": "#64b5f6",
    "gcm_enabled": "#1e88e5",
    "gcm_enforced": "#2e7d32",
    "eligible": "#b0bec5",
    "pilot": "#ffb300",
    "enabled": "#2e7d32",
    "blocked": "#e53935",
    "rolled_back": "#8e24aa",
}
FALLBACK_COLOR = "#607d8b"

STAGE_LABELS: dict[str, str] = {
    "legacy_cipher": "Legacy cipher",
    "clients_upgraded": "Clients upgraded",
    "gcm_enabled": "GCM enabled",
    "gcm_enforced": "GCM enforced",
    "eligible": "Eligible",
    "pilot": "Pilot",
    "enabled": "Enabled",
    "blocked": "Blocked",
    "rolled_back": "Rolled back",
}


def stage_color(stage: str) -> str:
    """The colour of `stage` on every chart."""
    return STAGE_COLORS.get(stage, FALLBACK_COLOR)


def stage_label(stage: str) -> str:
    """A stage code in plain words."""
    return STAGE_LABELS.get(stage, stage.replace("_", " ").capitalize())


def empty_figure(title: str, message: str = "Nothing to show for these filters.") -> go.Figure:
    """A titled figure that says there is nothing to show, instead of blank axes."""
    fig = go.Figure()
    fig.add_annotation(
        text=message, x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False, font={"size": 16}
    )
    fig.update_layout(title=title, xaxis={"visible": False}, yaxis={"visible": False}, height=320)
    return fig


def base_layout(fig: go.Figure, *, title: str, x: str, y: str, height: int = 380) -> go.Figure:
    """Apply the house layout: title, axis labels, legend on top, readable margins."""
    fig.update_layout(
        title=title,
        xaxis_title=x,
        yaxis_title=y,
        height=height,
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0},
        margin={"l": 60, "r": 20, "t": 80, "b": 50},
    )
    return fig


# Below this many tenants plotly picks half steps (0, 0.5, 1): tick every whole tenant instead.
SMALL_COUNT = 8


def whole_counts(fig: go.Figure, *, axis: str, largest: float, **where) -> go.Figure:
    """Tick a tenant-count axis ("x" or "y") at whole numbers with thousands separators.

    `largest` is the biggest value drawn on it; `where` (row=, col=) picks one subplot.
    """
    ticks: dict = {"tickformat": ",", "rangemode": "tozero"}
    if largest < SMALL_COUNT:
        ticks |= {"tick0": 0, "dtick": 1}
    update = fig.update_xaxes if axis == "x" else fig.update_yaxes
    update(**ticks, **where)
    return fig
