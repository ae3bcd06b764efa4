"""AppTest fixtures: one demo database per test session, and a helper to open a page as a role.

The fixture database is the real thing: migrated, the shipped plan synced, the demo
generator loaded with a small N and a fixed seed. Tests compare what a page shows with
an independent SQL count on this database.
"""

from __future__ import annotations

import os

import pytest
from streamlit.testing.v1 import AppTest

from lockstep.config import ROOT, get_settings
from lockstep.db import make_engine
from lockstep.migrate import upgrade
from lockstep.permissions import Actor

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
    load_demo(engine=engine, tenants=DEMO_TENANTS, seed=DEMO_SEED, actor=SYSTEM)
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


@pytest.fixture
def open_page(demo_db_url):
    """open_page(page_key, role) -> an AppTest that has rendered that page as that role."""

    def _open(page: str, role: str, *, timeout: float = 60) -> AppTest:
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=timeout)
        at.session_state["actor"] = ACTORS[role]
        at.run()
        if page != "overview":
            at.switch_page(f"pages/{page}.py")
            at.run()
        return at

    os.environ.setdefault("LOCKSTEP_ENV", "test")
    return _open
