"""Users: argon2 passwords, validation that names the bad value, admin-only, audited without secrets."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from lockstep.db import read_session, write_session
from lockstep.errors import NotFoundError, PermissionDenied, ValidationError
from lockstep.models import AuditEntry, User
from lockstep.permissions import SYSTEM, Actor
from lockstep.services import audit, users
from lockstep.services.users import add_user, deactivate_user, set_password, set_role, verify_password

PASSWORD = "correct horse battery"


pytestmark = pytest.mark.usefixtures("cheap_hashing")  # tests/db/conftest.py


def _add(engine, email="dana.lee@lockstep.example", role="account_manager", password=PASSWORD, actor=SYSTEM):
    with write_session(engine) as s:
        return add_user(
            session=s, actor=actor, email=email, role=role, password=password, display_name="Dana"
        )


def test_add_user_hashes_the_password_and_audits_without_it(engine):
    user = _add(engine, email="  Dana.Lee@Lockstep.Example ")
    assert user.email == "dana.lee@lockstep.example"  # stored trimmed and lower-case
    with read_session(engine) as s:
        stored = s.scalar(select(User).where(User.email == "dana.lee@lockstep.example"))
        assert stored.role == "account_manager" and stored.is_active and stored.display_name == "Dana"
        assert stored.password_hash.startswith("$argon2id$") and PASSWORD not in stored.password_hash
        assert verify_password(stored.password_hash, PASSWORD)
        assert not verify_password(stored.password_hash, PASSWORD + "!")
        entries = s.scalars(select(AuditEntry).where(AuditEntry.action == "user.add")).all()
        assert len(entries) == 1
        entry = entries[0]
        assert (entry.actor, entry.entity_type, entry.entity_id) == (SYSTEM.email, "user", stored.email)
        assert entry.after == {"email": stored.email, "role": "account_manager"}
        dumped = json.dumps([entry.before, entry.after])
        assert stored.password_hash not in dumped and "argon2" not in dumped and PASSWORD not in dumped
        assert audit.verify(s).ok


def test_duplicate_email_is_refused_whatever_its_case(engine):
    _add(engine)
    with pytest.raises(ValidationError, match="already exists"):
        _add(engine, email="DANA.LEE@lockstep.example")
    with read_session(engine) as s:
        assert len(s.scalars(select(User)).all()) == 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"role": "superuser"}, "role 'superuser' does not exist"),
        ({"email": "dana.lee"}, "'dana.lee' is not an e-mail address"),
        ({"email": "dana lee@lockstep.example"}, "is not an e-mail address"),
        ({"email": "dana@localhost"}, "'dana@localhost' is not an e-mail address"),
        ({"password": "short"}, "at least 10 characters"),
    ],
)
def test_bad_input_is_refused_with_the_bad_value_named(engine, kwargs, message):
    with pytest.raises(ValidationError, match=message):
        _add(engine, **kwargs)
    with read_session(engine) as s:
        assert s.scalars(select(User)).all() == []
        assert s.scalars(select(AuditEntry)).all() == []


@pytest.mark.parametrize("role", ["executive", "security_lead", "account_manager"])
def test_only_admins_manage_users(engine, role):
    someone = Actor(email=f"{role}@lockstep.example", role=role)
    with pytest.raises(PermissionDenied, match="may not user manage"):
        _add(engine, actor=someone)
    with read_session(engine) as s:
        assert s.scalars(select(User)).all() == []


def test_set_role_and_deactivate_are_audited(engine):
    _add(engine)
    with write_session(engine) as s:
        user = set_role(session=s, actor=SYSTEM, email="dana.lee@lockstep.example", role="executive")
        assert user.role == "executive"
        assert not deactivate_user(session=s, actor=SYSTEM, email="dana.lee@lockstep.example").is_active
    with read_session(engine) as s:
        actions = s.scalars(select(AuditEntry.action).order_by(AuditEntry.id)).all()
        assert actions == ["user.add", "user.set_role", "user.deactivate"]
        role_change = s.scalar(select(AuditEntry).where(AuditEntry.action == "user.set_role"))
        assert (role_change.before, role_change.after) == (
            {"role": "account_manager"}, {"role": "executive", "sessions_ended": 0}
        )
    with write_session(engine) as s, pytest.raises(ValidationError, match="role 'boss' does not exist"):
        set_role(session=s, actor=SYSTEM, email="dana.lee@lockstep.example", role="boss")
    with write_session(engine) as s, pytest.raises(NotFoundError, match="nobody@lockstep.example"):
        deactivate_user(session=s, actor=SYSTEM, email="nobody@lockstep.example")


def test_the_last_active_admin_cannot_be_demoted_or_deactivated(engine):
    _add(engine, email="admin@lockstep.example", role="admin")
    with write_session(engine) as s, pytest.raises(ValidationError, match="last active admin"):
        set_role(session=s, actor=SYSTEM, email="admin@lockstep.example", role="executive")
    with write_session(engine) as s, pytest.raises(ValidationError, match="last active admin"):
        deactivate_user(session=s, actor=SYSTEM, email="admin@lockstep.example")
    _add(engine, email="second.admin@lockstep.example", role="admin")
    with write_session(engine) as s:
        deactivate_user(session=s, actor=SYSTEM, email="admin@lockstep.example")


def test_set_password_checks_policy_and_who_may(engine):
    _add(engine)
    dana = Actor(email="dana.lee@lockstep.example", role="account_manager")
    with write_session(engine) as s, pytest.raises(ValidationError, match="at least 10 characters"):
        set_password(session=s, actor=dana, email=dana.email, password="123")
    with write_session(engine) as s, pytest.raises(PermissionDenied):
        set_password(session=s, actor=dana, email="other@lockstep.example", password="a long new password")
    with write_session(engine) as s:
        set_password(session=s, actor=dana, email=dana.email, password="a long new password")
    with read_session(engine) as s:
        stored = s.scalar(select(User).where(User.email == dana.email))
        assert verify_password(stored.password_hash, "a long new password")
        assert not verify_password(stored.password_hash, PASSWORD)
        entry = s.scalar(select(AuditEntry).where(AuditEntry.action == "user.set_password"))
        assert stored.password_hash not in json.dumps(entry.after)


def test_verify_password_is_false_for_missing_or_garbled_hashes():
    assert not verify_password(None, PASSWORD)
    assert not verify_password("", PASSWORD)
    assert not verify_password("not-a-hash", PASSWORD)


def test_add_user_with_hash_takes_only_argon2_hashes(engine):
    with write_session(engine) as s, pytest.raises(ValidationError, match="not an argon2 hash"):
        users.add_user_with_hash(
            session=s, actor=SYSTEM, email="a@lockstep.example", role="admin", password_hash="plain-text"
        )
    shared = users.hash_password(PASSWORD)
    with write_session(engine) as s:
        for email in ("a@lockstep.example", "b@lockstep.example"):
            users.add_user_with_hash(
                session=s, actor=SYSTEM, email=email, role="executive", password_hash=shared
            )
    with read_session(engine) as s:
        assert all(verify_password(u.password_hash, PASSWORD) for u in s.scalars(select(User)))
