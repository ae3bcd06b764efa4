"""AppTest fixtures: one demo database per test session, and a helper to open a page as a role.

The fixture database is the real thing: migrated, the shipped plan synced, the demo
generator loaded with a small N and a fixed seed. Tests compare what a page shows with
an independent SQL count on this database.

Signing in is real too: `sign_in_as` opens a server-side session for a demo user (the
same services the sign-in form uses) and makes this test's "browser" present its token.
AppTest has no browser and cannot carry cookies (st.context.cookies is empty there), so
the one function that reads cookies, lockstep.ui.session.browser_cookies, is replaced by
one returning this test's cookies; everything after it (the database check, the binding
to the Streamlit session) runs as in production.
"""

from __future__ import annotations

import os

import pytest
from streamlit.testing.v1 import AppTest

from lockstep.config import ROOT, get_settings
from lockstep.db import make_engine, write_session
from lockstep.migrate import upgrade
from lockstep.permissions import Actor
from lockstep.services import sessions
from lockstep.services.auth import actor_for
from lockstep.services.users import get_user
from lockstep.ui.web import session_cookie_name

DEMO_TENANTS = 400
DEMO_SEED = 11
ACTORS = {
    "admin": Actor("admin@lockstep.example", "admin"),
    "security_lead": Actor("lead@lockstep.example", "security_lead"),
    "account_manager": Actor("dana.lee@lockstep.example", "account_manager"),
    "executive": Actor("exec@lockstep.example", "executive"),
}


def build_demo_database(url: str) -> None:
    """Migrate, sync the shipped plan, load demo data: what `make run` does, smaller."""
    from lockstep.demo import load_demo
    from lockstep.permissions import SYSTEM
    from lockstep.plan import sync_plan_file

    upgrade(url)
    engine = make_engine(url)
    sync_plan_file(ROOT / "plan" / "90-day-plan.yaml", engine=engine)
    load_demo(engine=engine, tenants=DEMO_TENANTS, seed=DEMO_SEED, actor=SYSTEM, hostile_names=True)
    engine.dispose()


@pytest.fixture(scope="session")
def demo_db_template(tmp_path_factory) -> str:
    """Path of a demo database file built once per test session."""
    path = tmp_path_factory.mktemp("demo") / "demo.db"
    build_demo_database(f"sqlite:///{path}")
    return str(path)


@pytest.fixture
def demo_db_url(demo_db_template, tmp_path, monkeypatch) -> str:
    """A private copy of the demo database, configured as the app's database."""
    import shutil

    path = tmp_path / "demo.db"
    shutil.copy(demo_db_template, path)
    url = f"sqlite:///{path}"
    monkeypatch.setenv("LOCKSTEP_DATABASE_URL", url)
    get_settings.cache_clear()
    yield url
    get_settings.cache_clear()


@pytest.fixture
def demo_engine(demo_db_url):
    """Engine over the test's demo database, for independent SQL checks."""
    eng = make_engine(demo_db_url)
    yield eng
    eng.dispose()


def open_browser_session(engine, email: str, method: str = "password") -> str:
    """A signed-in browser's cookie token for `email`: session opened, code traded, as in the app."""
    with write_session(engine) as s:
        user = get_user(session=s, email=email)
        code = sessions.start_session(session=s, actor=actor_for(user), method=method)
        return sessions.activate_session(session=s, code=code).token


@pytest.fixture
def browser_cookie(monkeypatch):
    """browser_cookie(token or None): what this test's browser presents as its session cookie from now on."""

    def _present(token: str | None, **others: str) -> None:
        def cookies() -> dict[str, str]:
            return {**others, **({session_cookie_name(): token} if token else {})}

        monkeypatch.setattr("lockstep.ui.session.browser_cookies", cookies)

    _present(None)
    return _present


@pytest.fixture
def sign_in_as(demo_engine, browser_cookie):
    """sign_in_as(email) -> Actor: a real server-side session for that user, presented by this browser."""

    def _sign_in(email: str) -> Actor:
        browser_cookie(open_browser_session(demo_engine, email))
        with write_session(demo_engine) as s:
            return actor_for(get_user(session=s, email=email))

    return _sign_in


@pytest.fixture
def open_page(demo_db_url, sign_in_as):
    """open_page(page_key, role) -> an AppTest that has rendered that page as that role."""

    def _open(page: str, role: str, *, timeout: float = 60) -> AppTest:
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=timeout)
        sign_in_as(ACTORS[role].email)
        at.run()
        if page != "overview":
            at.switch_page(f"pages/{page}.py")
            at.run()
        return at

    os.environ.setdefault("LOCKSTEP_ENV", "test")
    return _open
