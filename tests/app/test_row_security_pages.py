"""An account manager's pages on PostgreSQL, where their reads and writes run under row-level security.

The other page tests run on SQLite (no row-level security). Here the demo database is on
PostgreSQL, so every read the pages make for the manager runs as lockstep_app under the
policies: each of their pages renders without an error, their tenant list is their own, a
note and a share link go through, and an admin's pages still see every tenant.
"""

from __future__ import annotations

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from lockstep import db
from lockstep.access import pages_for
from lockstep.config import ROOT, get_settings
from lockstep.db import make_engine
from lockstep.row_security import scope_session_to
from tests.app.conftest import ACTORS, build_demo_database, open_browser_session
from tests.app.helpers import rows
from tests.conftest import new_database_url

ME = ACTORS["account_manager"].email


@pytest.fixture(scope="module")
def pg_demo_url(request, tmp_path_factory) -> str:
    """The demo database on PostgreSQL, built once for this module."""
    url = new_database_url("postgresql", request, tmp_path_factory.mktemp("rls_app"))
    build_demo_database(url)
    return url


@pytest.fixture
def pg_app(pg_demo_url, monkeypatch, browser_cookie):
    """open(page, role) -> an AppTest rendered on the PostgreSQL demo database; and its engine."""
    monkeypatch.setenv("LOCKSTEP_DATABASE_URL", pg_demo_url)
    monkeypatch.setenv("LOCKSTEP_ENV", "test")
    get_settings.cache_clear()
    st.cache_data.clear()  # every read below must reach the database, not an earlier test's cache
    engine = make_engine(pg_demo_url)

    def _open(page: str, role: str) -> AppTest:
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=90)
        # Signed in as the app does it: a server-side session whose cookie this browser presents.
        browser_cookie(open_browser_session(engine, ACTORS[role].email))
        at.run()
        if page != "overview":
            at.switch_page(f"pages/{page}.py")
            at.run()
        return at

    yield _open, engine
    engine.dispose()
    get_settings.cache_clear()


@pytest.mark.postgres
@pytest.mark.parametrize("page", pages_for("account_manager"))
def test_every_page_of_a_manager_renders_under_row_level_security(pg_app, page, monkeypatch):
    scoped_to = []

    def recording(session, actor):
        scoped_to.append(actor.email)
        scope_session_to(session, actor)

    monkeypatch.setattr(db, "scope_session_to", recording)
    open_page, _ = pg_app
    at = open_page(page, "account_manager")
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    assert set(scoped_to) == {ME}  # the page's reads ran in sessions scoped to the manager


@pytest.mark.postgres
@pytest.mark.parametrize("role", ["account_manager", "admin"])
def test_the_tenant_list_is_the_managers_own_and_an_admins_is_everyones(pg_app, role):
    open_page, engine = pg_app
    at = open_page("customers", role)
    where = " WHERE account_manager = :me" if role == "account_manager" else ""
    first = f"SELECT external_id, name FROM tenants{where} ORDER BY name, external_id LIMIT 100"
    expected = [f"{n} ({e})" for e, n in rows(engine, first, {"me": ME})]
    assert at.selectbox(key="customers_tenant").options == expected


@pytest.mark.postgres
def test_a_managers_note_and_share_link_go_through_under_the_policies(pg_app):
    open_page, engine = pg_app
    at = open_page("customers", "account_manager")
    ext = at.selectbox(key="customers_tenant").value
    next(t for t in at.text_area if t.label.startswith("Add a note")).input("Pilot in July (RLS)")
    next(b for b in at.button if b.label == "Save note").click().run()
    assert not at.exception and not at.error
    next(b for b in at.button if b.label == "Create share link").click().run()
    assert not at.exception and not at.error
    made = rows(
        engine,
        "SELECT (SELECT count(*) FROM tenant_notes n WHERE n.tenant_id = t.id AND n.author = :me "
        "AND n.body = 'Pilot in July (RLS)'), (SELECT count(*) FROM share_links l WHERE l.tenant_id = t.id "
        "AND l.created_by = :me) FROM tenants t WHERE t.external_id = :e",
        {"me": ME, "e": ext},
    )
    assert tuple(made[0]) == (1, 1)
