"""What the Users page does, in the service: every action for admins, refused for every other role.

Each action is tried by each non-admin role on SQLite and PostgreSQL: PermissionDenied,
the user row unchanged, and not even an audit entry. The admin's successful actions are
audited. The last active admin survives two admins demoting each other at once.
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select

from lockstep.db import read_session, write_session
from lockstep.errors import PermissionDenied, ValidationError
from lockstep.models import AuditEntry, User
from lockstep.permissions import SYSTEM, Actor
from lockstep.services.auth import MAX_FAILURES, SignInFailed, authenticate
from lockstep.services.users import (
    add_user,
    deactivate_user,
    reactivate_user,
    set_password,
    set_role,
    unlock_user,
)

PASSWORD = "correct horse battery"
TARGET = "dana.lee@x.example"
T0 = datetime(2026, 12, 1, 9, 0)

pytestmark = pytest.mark.usefixtures("cheap_hashing")  # tests/db/conftest.py

ACTIONS = {
    "add": lambda s, a: add_user(session=s, actor=a, email="new@x.example", role="executive",
                                 password=PASSWORD),
    "set_role": lambda s, a: set_role(session=s, actor=a, email=TARGET, role="executive"),
    "deactivate": lambda s, a: deactivate_user(session=s, actor=a, email=TARGET),
    "reactivate": lambda s, a: reactivate_user(session=s, actor=a, email="gone@x.example"),
    "unlock": lambda s, a: unlock_user(session=s, actor=a, email=TARGET),
    "set_password": lambda s, a: set_password(session=s, actor=a, email=TARGET, password="a brand new one"),
}


@pytest.fixture
def people(engine):
    with write_session(engine) as s:
        for email, role in [("admin@x.example", "admin"), (TARGET, "account_manager"),
                            ("lead@x.example", "security_lead"), ("exec@x.example", "executive"),
                            ("gone@x.example", "executive"), ("am2@x.example", "account_manager")]:
            add_user(session=s, actor=SYSTEM, email=email, role=role, password=PASSWORD)
        deactivate_user(session=s, actor=SYSTEM, email="gone@x.example")
        target = s.scalar(select(User).where(User.email == TARGET))
        target.failed_logins, target.locked_until = MAX_FAILURES, T0 + timedelta(days=365 * 100)
    return engine


def _snapshot(engine):
    with read_session(engine) as s:
        users = [(u.email, u.role, u.is_active, u.failed_logins, u.locked_until, u.password_hash)
                 for u in s.scalars(select(User).order_by(User.email))]
        return users, s.scalar(select(func.count()).select_from(AuditEntry))


@pytest.mark.parametrize("action", list(ACTIONS))
@pytest.mark.parametrize("role, email", [
    ("security_lead", "lead@x.example"),
    ("executive", "exec@x.example"),
    ("account_manager", "am2@x.example"),
])
def test_every_user_action_is_refused_for_every_other_role(people, action, role, email):
    before = _snapshot(people)
    with pytest.raises(PermissionDenied, match="may not user manage"), write_session(people) as s:
        ACTIONS[action](s, Actor(email, role))
    assert _snapshot(people) == before


@pytest.mark.parametrize("action", list(ACTIONS))
def test_every_user_action_is_done_for_an_admin_and_audited(people, action):
    _, audited = _snapshot(people)
    with write_session(people) as s:
        ACTIONS[action](s, Actor("admin@x.example", "admin"))
    with read_session(people) as s:
        entry = s.scalar(select(AuditEntry).order_by(AuditEntry.id.desc()).limit(1))
        assert entry.id == audited + 1
        assert entry.action == f"user.{action}"
        assert entry.actor == "admin@x.example"


def test_reactivate_lets_the_user_sign_in_again(people):
    with write_session(people) as s, pytest.raises(SignInFailed):
        authenticate(session=s, email="gone@x.example", password=PASSWORD, now=T0)
    with write_session(people) as s:
        reactivate_user(session=s, actor=SYSTEM, email="gone@x.example")
        unlock_user(session=s, actor=SYSTEM, email="gone@x.example")
    with write_session(people) as s:
        assert authenticate(session=s, email="gone@x.example", password=PASSWORD, now=T0).role == "executive"


def test_unlock_lets_the_right_password_in_at_once(people):
    with write_session(people) as s, pytest.raises(SignInFailed):
        authenticate(session=s, email=TARGET, password=PASSWORD, now=T0)
    with write_session(people) as s:
        unlock_user(session=s, actor=SYSTEM, email=TARGET)
    with read_session(people) as s:
        entry = s.scalar(select(AuditEntry).where(AuditEntry.action == "user.unlock"))
        assert entry.before["failures"] == MAX_FAILURES + 1
        assert entry.after == {"failures": 0, "locked_until": None}
    with write_session(people) as s:
        assert authenticate(session=s, email=TARGET, password=PASSWORD, now=T0).email == TARGET


def test_a_deactivated_admin_does_not_count_as_the_other_admin(people):
    with write_session(people) as s:
        add_user(session=s, actor=SYSTEM, email="old.admin@x.example", role="admin", password=PASSWORD)
        deactivate_user(session=s, actor=SYSTEM, email="old.admin@x.example")
    with write_session(people) as s, pytest.raises(ValidationError, match="last active admin"):
        set_role(session=s, actor=SYSTEM, email="admin@x.example", role="executive")


def test_two_admins_demoting_each_other_at_once_leave_one_admin(people):
    with write_session(people) as s:
        add_user(session=s, actor=SYSTEM, email="admin2@x.example", role="admin", password=PASSWORD)
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def demote(me: str, other: str) -> None:
        barrier.wait()
        try:
            with write_session(people) as s:
                set_role(session=s, actor=Actor(me, "admin"), email=other, role="executive")
            outcomes.append("demoted")
        except ValidationError:
            outcomes.append("refused")

    threads = [threading.Thread(target=demote, args=pair) for pair in
               [("admin@x.example", "admin2@x.example"), ("admin2@x.example", "admin@x.example")]]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["demoted", "refused"]
    with read_session(people) as s:
        assert s.scalar(select(func.count()).select_from(User).where(User.role == "admin")) == 1
