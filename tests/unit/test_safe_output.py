"""Safe output without a browser: Markdown escaping, no HTML switches in the views, spreadsheet-safe
CSV, and the server settings that keep tracebacks and developer tools out of the browser."""

from __future__ import annotations

import csv
import io
import re
import string
import subprocess
import sys
import tomllib

import pandas as pd
import pytest

from lockstep.config import ROOT
from lockstep.exports import FORMULA_STARTS, dataframe_to_csv, neutralise, rows_to_csv
from lockstep.ui.safe import md

HOSTILE = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "<b>Bold</b> Media",
    "[click me](javascript:alert(1))",
    "![pixel](https://tracker.example/p.png)",
    ":red[alarm] :material/home: :smile:",
    "**bold** _it_ `code` ~~strike~~",
    "# heading\n> quote\n- item",
    "$x^2$ and $$y$$",
    "back\\slash & ampersand &lt;",
    "=HYPERLINK(\"http://x\")",
    "株式会社 Sakura Trading · Zoë's Café",
]
VIEW_FILES = [
    ROOT / "app.py",
    *sorted((ROOT / "pages").glob("*.py")),
    *sorted((ROOT / "lockstep" / "ui").glob("*.py")),
]
HTML_SWITCHES = (
    "unsafe_allow_html", "st.html(", "components.html", "components.v1", "unsafe_allow_javascript",
)


# --- Markdown escaping -----------------------------------------------------------------------


@pytest.mark.parametrize("raw", HOSTILE)
def test_md_escapes_every_markdown_character(raw):
    out = md(raw)
    # No ASCII punctuation is left without a backslash before it...
    unescaped = re.findall(r"(?<!\\)[" + re.escape(string.punctuation.replace("\\", "")) + "]", out)
    assert unescaped == []
    # ...and removing the backslashes gives the text back (whitespace folded to single spaces).
    assert re.sub(r"\\(.)", r"\1", out) == " ".join(raw.split())


def test_md_keeps_plain_words_as_they_are():
    assert md("Acme Dental 42") == "Acme Dental 42"


# --- no HTML switches in the views ---------------------------------------------------------------


@pytest.mark.parametrize("path", VIEW_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_views_never_switch_html_on(path):
    source = path.read_text()
    for switch in HTML_SWITCHES:
        assert switch not in source, f"{path.name} uses {switch}"


# --- CSV that is safe in a spreadsheet ------------------------------------------------------------


@pytest.mark.parametrize("start", FORMULA_STARTS)
def test_text_starting_like_a_formula_is_neutralised(start):
    value = f"{start}SUM(A1:A9)"
    assert neutralise(value) == "'" + value


@pytest.mark.parametrize("value", [-3, -2.5, 0, 12])
def test_numbers_stay_numbers(value):
    assert neutralise(value) == str(value)


def test_every_formula_start_is_covered():
    assert set(FORMULA_STARTS) == {"=", "+", "-", "@", "\t", "\r"}


def _cells(data: bytes) -> list[list[str]]:
    assert data.startswith("\ufeff".encode())
    return list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))


def test_a_csv_of_hostile_cells_opens_as_text():
    names = ["=1+1", "+Plus", "-Minus", "@Home", "\tTab", "\rReturn", "<b>Bold</b>", "plain, with comma"]
    frame = pd.DataFrame({"name": names, "seats": [1, -2, 3, 4, 5, 6, 7, 8]})
    rows = _cells(dataframe_to_csv(frame))
    assert rows[0] == ["name", "seats"]
    assert [r[0] for r in rows[1:]] == ["'" + n for n in names[:6]] + names[6:]
    assert [r[1] for r in rows[1:]] == ["1", "-2", "3", "4", "5", "6", "7", "8"]


def test_a_hostile_header_is_neutralised_too():
    rows = _cells(rows_to_csv(["=cmd|' /C calc'!A0", "ok"], [["a", "b"]]))
    assert rows[0] == ["'=cmd|' /C calc'!A0", "ok"]


# --- server settings ------------------------------------------------------------------------------


def test_the_config_file_keeps_details_out_of_the_browser():
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["client"]["showErrorDetails"] == "none"
    assert config["client"]["toolbarMode"] == "minimal"
    assert config["client"]["showSidebarNavigation"] is False
    assert config["server"]["enableXsrfProtection"] is True
    assert config["server"]["runOnSave"] is False
    assert config["browser"]["gatherUsageStats"] is False


def test_streamlit_reads_the_settings_from_the_repository():
    # What Streamlit itself resolves when started from the repository root (as `make run` does).
    code = (
        "from streamlit import config\n"
        "config.get_config_options(force_reparse=True)\n"
        "for k in ('client.showErrorDetails', 'client.toolbarMode', 'client.showSidebarNavigation',"
        " 'server.enableXsrfProtection', 'server.runOnSave'):\n"
        "    print(k, config.get_option(k))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    options = dict(line.split(" ", 1) for line in done.stdout.splitlines())
    assert options == {
        "client.showErrorDetails": "none",
        "client.toolbarMode": "minimal",
        "client.showSidebarNavigation": "False",
        "server.enableXsrfProtection": "True",
        "server.runOnSave": "False",
    }
