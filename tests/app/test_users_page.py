"""The Users page: an admin lists users and changes them; every other role gets nothing of it.

Each action goes through the form as an admin would and is checked in the database and the
audit log; each refusal (the last admin, passwords that differ, a short password) shows the
service's message and writes nothing.
"""

from __future__ import annotations

import pytest
from sqlalchemy import text
from streamlit.testing.v1 import AppTest

from lockstep.access import may_open
from lockstep.config import ROOT
from lockstep.labels import role_label
from lockstep.models import ROLES
from lockstep.services.users import verify_password
from lockstep.ui.session import ROLE_LABELS
from tests.app.conftest import ACTORS
from tests.app.helpers import rows

DANA = "dana.lee@lockstep.example"
NEW_PASSWORD = "a fresh long password"


def user_row(engine, email: str):
    return rows(engine, "SELECT role, is_active, failed_logins, locked_until, password_hash FROM users "
                "WHERE email = :e", {"e": email})[0]


def audit_actions(engine) -> list[tuple[str, str, str]]:
    return [tuple(r) for r in rows(engine, "SELECT actor, action, entity_id FROM audit_log "
                                   "WHERE action LIKE 'user.%' ORDER BY id")]


def pick(at: AppTest, email: str) -> AppTest:
    at.selectbox(key="users_pick").set_value(email)
    return at.run()


@pytest.fixture
def users_page(open_page):
    return open_page("users", "admin")


def test_the_table_lists_every_user_as_the_database_has_them(users_page, demo_engine):
    table = users_page.dataframe[0].value
    expected = rows(demo_engine, "SELECT email, role, is_active FROM users ORDER BY email")
    assert list(table["email"]) == [r[0] for r in expected]
    # Roles in words, as the person reads them (the codes stay in the database and the services).
    assert list(table["role"]) == [role_label(r[1]) for r in expected]
    assert "account_manager" not in set(table["role"])
    assert list(table["active"]) == [bool(r[2]) for r in expected]
    assert {"last_sign_in", "locked_until", "failed_sign_ins", "open_sessions"} <= set(table.columns)
    # The admin looking at it is signed in: one open session, a last sign-in time is not required.
    admin = table.set_index("email").loc[ACTORS["admin"].email]
    assert admin["open_sessions"] == 1


def test_add_a_user(users_page, demo_engine):
    at = users_page
    at.text_input(key="users_new_email").input("New.Person@Lockstep.example")
    at.text_input(key="users_new_name").input("New Person")
    at.selectbox(key="users_new_role").set_value("security_lead")
    at.text_input(key="users_new_pw1").input(NEW_PASSWORD)
    at.text_input(key="users_new_pw2").input(NEW_PASSWORD)
    at.button(key="FormSubmitter:users_add-Add user").click().run()
    assert not at.exception and not at.error
    assert at.success[0].value.startswith("new")
    role, active, *_, password_hash = user_row(demo_engine, "new.person@lockstep.example")
    assert (role, bool(active)) == ("security_lead", True)
    assert verify_password(password_hash, NEW_PASSWORD)
    new = "new.person@lockstep.example"
    assert audit_actions(demo_engine)[-1] == (ACTORS["admin"].email, "user.add", new)
    assert "new.person@lockstep.example" in list(at.dataframe[0].value["email"])


@pytest.mark.parametrize("second, message", [
    ("not the same password", "The two passwords differ"),
    ("short", "The two passwords differ"),
])
def test_adding_with_passwords_that_differ_writes_nothing(users_page, demo_engine, second, message):
    at = users_page
    before = audit_actions(demo_engine)
    at.text_input(key="users_new_email").input("someone@lockstep.example")
    at.text_input(key="users_new_pw1").input(NEW_PASSWORD)
    at.text_input(key="users_new_pw2").input(second)
    at.button(key="FormSubmitter:users_add-Add user").click().run()
    assert message in at.error[0].value
    assert not rows(demo_engine, "SELECT 1 FROM users WHERE email = 'someone@lockstep.example'")
    assert audit_actions(demo_engine) == before


def test_adding_with_a_short_password_shows_the_rule(users_page, demo_engine):
    at = users_page
    at.text_input(key="users_new_email").input("someone@lockstep.example")
    at.text_input(key="users_new_pw1").input("short")
    at.text_input(key="users_new_pw2").input("short")
    at.button(key="FormSubmitter:users_add-Add user").click().run()
    assert [e.value for e in at.error] == ["the password must be at least 10 characters long"]
    assert not rows(demo_engine, "SELECT 1 FROM users WHERE email = 'someone@lockstep.example'")


def test_change_a_role(users_page, demo_engine):
    at = pick(users_page, DANA)
    at.selectbox(key=f"users_role_{DANA}").set_value("executive").run()
    at.button(key="users_set_role").click().run()
    assert not at.error
    assert at.success[0].value.endswith(f"is now {ROLE_LABELS['executive']}.")
    assert user_row(demo_engine, DANA)[0] == "executive"
    assert audit_actions(demo_engine)[-1] == (ACTORS["admin"].email, "user.set_role", DANA)


def test_the_last_admin_cannot_demote_or_deactivate_themself(users_page, demo_engine):
    me = ACTORS["admin"].email
    at = pick(users_page, me)
    at.selectbox(key=f"users_role_{me}").set_value("executive").run()
    at.button(key="users_set_role").click().run()
    assert [e.value for e in at.error] == [f"{me} is the last active admin; make someone else admin first"]
    at.button(key="users_deactivate").click().run()
    assert [e.value for e in at.error] == [f"{me} is the last active admin; make someone else admin first"]
    assert user_row(demo_engine, me)[:2] in [("admin", 1), ("admin", True)]


def test_deactivate_and_reactivate(users_page, demo_engine):
    at = pick(users_page, DANA)
    at.button(key="users_deactivate").click().run()
    assert not at.error
    assert not user_row(demo_engine, DANA)[1]
    at.button(key="users_reactivate").click().run()
    assert not at.error
    assert user_row(demo_engine, DANA)[1]
    assert [a[1] for a in audit_actions(demo_engine)[-2:]] == ["user.deactivate", "user.reactivate"]


def test_unlock(users_page, demo_engine):
    with demo_engine.begin() as conn:
        conn.execute(text("UPDATE users SET failed_logins = 7, locked_until = '2999-01-01 00:00:00' "
                          "WHERE email = :e"), {"e": DANA})
    at = pick(users_page.run(), DANA)
    assert not at.button(key="users_unlock").disabled
    at.button(key="users_unlock").click().run()
    assert not at.error
    assert user_row(demo_engine, DANA)[2:4] == (0, None)
    assert audit_actions(demo_engine)[-1][1] == "user.unlock"
    assert at.button(key="users_unlock").disabled


def test_set_a_new_password_typed_twice(users_page, demo_engine):
    at = pick(users_page, DANA)
    at.text_input(key="users_pw1").input(NEW_PASSWORD)
    at.text_input(key="users_pw2").input(NEW_PASSWORD + "!")
    at.button(key="FormSubmitter:users_password-Set password").click().run()
    assert "The two passwords differ" in at.error[0].value
    assert not verify_password(user_row(demo_engine, DANA)[4], NEW_PASSWORD)
    at.text_input(key="users_pw1").input(NEW_PASSWORD)
    at.text_input(key="users_pw2").input(NEW_PASSWORD)
    at.button(key="FormSubmitter:users_password-Set password").click().run()
    assert not at.error
    assert verify_password(user_row(demo_engine, DANA)[4], NEW_PASSWORD)
    assert audit_actions(demo_engine)[-1] == (ACTORS["admin"].email, "user.set_password", DANA)


@pytest.mark.parametrize("role", [r for r in ROLES if not may_open(r, "users")])
def test_every_other_role_is_refused_the_page_and_its_actions(demo_db_url, sign_in_as, demo_engine, role):
    assert role != "admin"
    before = audit_actions(demo_engine)
    # Run directly (as Streamlit may on a cold start): the page itself refuses before any widget.
    at = AppTest.from_file(str(ROOT / "pages" / "users.py"), default_timeout=60)
    sign_in_as(ACTORS[role].email)
    at.run()
    assert not at.exception
    assert [e.value for e in at.error] == ["This page is not available to you."]
    assert not at.dataframe and not at.button and not at.text_input and not at.selectbox
    # Through the app, it is not even in the navigation.
    app = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    with pytest.raises(ValueError):
        app.switch_page("pages/users.py")
    assert audit_actions(demo_engine) == before
