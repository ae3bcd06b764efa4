"""Small readers shared by the AppTest page tests."""

from __future__ import annotations

import json

from sqlalchemy import text


def rows(engine, query: str, params: dict | None = None):
    """The rows of an independent SQL check."""
    with engine.connect() as conn:
        return conn.execute(text(query), params or {}).all()


def figure_titled(at, title_part: str) -> dict:
    """The plotly figure JSON of the first chart whose title contains `title_part`."""
    for el in at.get("plotly_chart"):
        fig = json.loads(el.proto.spec)
        if title_part in fig["layout"]["title"]["text"]:
            return fig
    raise AssertionError(f"no chart titled like {title_part!r}")


def table_with(at, column: str):
    """The first table showing `column` (display dataframes carry no key AppTest can see)."""
    return next(d.value for d in at.dataframe if column in d.value.columns)
