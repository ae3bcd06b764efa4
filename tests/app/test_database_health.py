"""The app with a database it cannot use: one page-level message saying why, and nothing else drawn."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from lockstep.config import ROOT, get_settings
from lockstep.migrate import downgrade, head_revision
from tests.app.conftest import ACTORS


def _open_as_lead() -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.session_state["actor"] = ACTORS["security_lead"]
    at.run()
    return at


def test_a_schema_behind_says_the_database_needs_db_upgrade(demo_db_url):
    downgrade(demo_db_url, "0004")
    at = _open_as_lead()
    assert not at.exception
    [error] = at.error
    assert "The database needs `db upgrade`" in error.value
    assert "revision 0004" in error.value and f"needs {head_revision()}" in error.value
    assert not at.get("plotly_chart") and not at.dataframe


@pytest.fixture
def unreachable_url(monkeypatch):
    monkeypatch.setenv(
        "LOCKSTEP_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:1/nowhere?connect_timeout=5"
    )
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_an_unreachable_database_gets_a_page_level_message(unreachable_url):
    at = _open_as_lead()
    assert not at.exception
    [error] = at.error
    assert "The database cannot be reached right now" in error.value
    assert "127.0.0.1" not in error.value  # no connection details in the browser
    assert not at.get("plotly_chart") and not at.dataframe
