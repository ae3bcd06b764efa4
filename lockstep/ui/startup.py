"""What the server does once at start so that the first visit after it does not wait for it.

The first run of a page imported everything behind it (pandas, plotly and its validators, the
queries, the charts): a second or more on this machine, paid by whoever came first after a
start. `preload_pages()` runs each page's own import statements (read from the files, so
there is no list to keep) and builds one throw-away figure, which loads plotly's validators
for the trace types the charts use. serve.py calls it before serving.
"""

from __future__ import annotations

import ast
import importlib
import logging

from lockstep.config import ROOT

log = logging.getLogger(__name__)


def page_imports() -> list[tuple[str, tuple[str, ...]]]:
    """(module, names taken from it) for every top-level import of app.py and pages/*.py, without repeats."""
    found: dict[str, set[str]] = {}
    for path in [ROOT / "app.py", *sorted((ROOT / "pages").glob("*.py"))]:
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.Import):
                for alias in node.names:
                    found.setdefault(alias.name, set())
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.setdefault(node.module, set()).update(alias.name for alias in node.names)
    return [(m, tuple(sorted(names))) for m, names in found.items() if m != "__future__"]


def preload_pages() -> list[str]:
    """Import what every page imports and warm plotly; returns the modules imported."""
    done = []
    for name, taken in page_imports():
        try:
            module = importlib.import_module(name)
            done.append(name)
            # `from lockstep.queries import e2ee`: the name is a submodule, imported on its own.
            for sub in taken:
                if not hasattr(module, sub):
                    importlib.import_module(f"{name}.{sub}")
                    done.append(f"{name}.{sub}")
        except Exception:  # noqa: BLE001 - a page's own run will show its error; start anyway
            log.warning("could not preload %s", name, exc_info=True)
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    # The trace types and the subplot grid the charts use (lockstep/charts): their validators
    # load on first use.
    fig = make_subplots(rows=1, cols=2)
    fig.add_trace(go.Bar(x=[1], y=[1]), row=1, col=1)
    fig.add_trace(go.Scatter(x=[1], y=[1]), row=1, col=2)
    fig.update_layout(title="warm-up", legend={"orientation": "h"}).update_xaxes(tickformat=",").to_json()
    # A table's first conversion to Arrow (st.dataframe) sets up pyarrow's pandas bridge.
    import pandas as pd
    from streamlit import dataframe_util

    dataframe_util.convert_pandas_df_to_arrow_bytes(pd.DataFrame({"n": [1], "s": ["x"]}))
    _skip_streamlit_repl_check()
    return done


def _skip_streamlit_repl_check() -> None:
    """Answer Streamlit's once-per-process "is this a REPL?" check now: no.

    On the first element a process draws, Streamlit asks whether it runs in a REPL with
    inspect.stack(), which resolves the file of every loaded module: 0.3-0.7 s on the first
    visit here. The server runs under `streamlit run`, so the answer is known. The flag is
    private to Streamlit; should it go away, this sets an unused name and nothing else changes.
    """
    import streamlit.delta_generator as delta_generator

    delta_generator._use_warning_has_been_displayed = True
