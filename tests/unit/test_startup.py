"""The server's start-up preload covers what the pages import, so a first visit does not import it."""

from __future__ import annotations

import ast

from lockstep.config import ROOT
from lockstep.ui.startup import page_imports, preload_pages


def test_every_top_level_import_of_every_page_is_preloaded():
    listed = dict(page_imports())
    for path in sorted((ROOT / "pages").glob("*.py")):
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.ImportFrom) and node.module != "__future__":
                assert set(a.name for a in node.names) <= set(listed[node.module]), (path.name, node.module)
            elif isinstance(node, ast.Import):
                assert all(a.name in listed for a in node.names), path.name


def test_submodules_named_in_a_from_import_are_imported_too():
    done = preload_pages()
    # pages/e2ee.py: `from lockstep.queries import e2ee as q` names a submodule, not an attribute.
    assert "lockstep.queries.e2ee" in done and "lockstep.charts.rollout" in done
