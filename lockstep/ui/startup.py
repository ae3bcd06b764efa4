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

    go.Figure([go.Bar(x=[1], y=[1]), go.Scatter(x=[1], y=[1])]).update_layout(title="warm-up").to_json()
    return done
