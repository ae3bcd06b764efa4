"""update_plan_item: edits land with history and audit, stale versions conflict, bad input is named."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import func, select

from lockstep.db import read_session, write_session
from lockstep.errors import ConflictError, NotFoundError, PermissionDenied, ValidationError
from lockstep.models import AuditEntry, PlanItem, PlanItemUpdate
from lockstep.permissions import Actor
from lockstep.services import audit
from lockstep.services.plan_items import update_plan_item
from tests.db.test_plan_queries import seed_plan

LEAD = Actor("lead@example.com", "security_lead")
ADMIN = Actor("admin@example.com", "admin")


@pytest.fixture
def plan_engine(engine):
    with write_session(engine) as s:
        seed_plan(s)
    return engine


def _state(engine, item_id="A3"):
    """(status, percent, comment, done_date, version, updates rows, audit rows)."""
    with read_session(engine) as s:
        it = s.get(PlanItem, item_id)
        updates = s.scalar(select(func.count()).select_from(PlanItemUpdate))
        audits = s.scalar(select(func.count()).select_from(AuditEntry))
        return (it.status, it.percent, it.comment, it.done_date, it.version, updates, audits)


def test_edit_changes_item_and_writes_history_and_audit(plan_engine):
    with write_session(plan_engine) as s:
        change = update_plan_item(
            session=s,
            actor=LEAD,
            item_id="A3",
            expected_version=1,
            status="done",
            done_date=date(2020, 5, 14),
        )
    assert change.changed and change.version == 2
    assert change.changes == {
        "status": ["in_progress", "done"],
        "percent": [60, 100],  # done means 100%
        "done_date": [None, "2020-05-14"],
    }
    assert _state(plan_engine) == ("done", 100, "", date(2020, 5, 14), 2, 1, 1)
    with read_session(plan_engine) as s:
        upd = s.scalars(select(PlanItemUpdate)).one()
        entry = s.scalars(select(AuditEntry)).one()
        assert audit.verify(s).ok
        updated_by = s.get(PlanItem, "A3").updated_by
    assert (upd.item_id, upd.version, upd.changed_by, upd.changes) == ("A3", 2, LEAD.email, change.changes)
    assert (entry.action, entry.entity_type, entry.entity_id, entry.actor) == (
        "plan.update_item",
        "plan_item",
        "A3",
        LEAD.email,
    )
    assert entry.before == {"status": "in_progress", "percent": 60, "done_date": None, "version": 1}
    assert entry.after == {"status": "done", "percent": 100, "done_date": "2020-05-14", "version": 2}
    assert updated_by == LEAD.email


def test_stale_version_conflicts_with_the_other_change_and_writes_nothing(plan_engine):
    with write_session(plan_engine) as s:
        update_plan_item(
            session=s, actor=ADMIN, item_id="A3", expected_version=1, status="blocked", comment="vendor"
        )
    before = _state(plan_engine)
    with pytest.raises(ConflictError) as caught, write_session(plan_engine) as s:
        update_plan_item(session=s, actor=LEAD, item_id="A3", expected_version=1, percent=80)
    err = caught.value
    assert "version 1" in str(err) and "version 2" in str(err)
    assert err.current["version"] == 2 and err.current["status"] == "blocked"
    assert err.their_change["who"] == ADMIN.email
    assert err.their_change["changes"] == {"status": ["in_progress", "blocked"], "comment": ["", "vendor"]}
    assert _state(plan_engine) == before == ("blocked", 60, "vendor", None, 2, 1, 1)


def test_reapplying_on_the_latest_version_succeeds(plan_engine):
    with write_session(plan_engine) as s:
        update_plan_item(session=s, actor=ADMIN, item_id="A3", expected_version=1, comment="vendor")
    with write_session(plan_engine) as s:
        change = update_plan_item(session=s, actor=LEAD, item_id="A3", expected_version=2, percent=80)
    assert change.version == 3
    assert _state(plan_engine) == ("in_progress", 80, "vendor", None, 3, 2, 2)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"status": "finished"}, "status"),
        ({"percent": 101}, "percent"),
        ({"percent": -1}, "percent"),
        ({"done_date": date(2020, 5, 1)}, "done_date"),  # status stays in_progress
        ({"status": "done", "done_date": date(2999, 1, 1)}, "done_date"),  # future
        ({"status": "done", "done_date": date(2020, 4, 14)}, "done_date"),  # before planned start 04-15
    ],
)
def test_bad_input_names_the_field_and_writes_nothing(plan_engine, kwargs, field):
    before = _state(plan_engine)
    with pytest.raises(ValidationError, match=f"^{field}:"), write_session(plan_engine) as s:
        update_plan_item(session=s, actor=LEAD, item_id="A3", expected_version=1, **kwargs)
    assert _state(plan_engine) == before


@pytest.mark.parametrize("role", ["executive", "account_manager"])
def test_read_only_roles_may_not_edit(plan_engine, role):
    with pytest.raises(PermissionDenied), write_session(plan_engine) as s:
        update_plan_item(
            session=s, actor=Actor("x@example.com", role), item_id="A3", expected_version=1, percent=70
        )
    assert _state(plan_engine)[1] == 60


def test_unchanged_submit_is_a_no_op(plan_engine):
    with write_session(plan_engine) as s:
        change = update_plan_item(
            session=s,
            actor=LEAD,
            item_id="A3",
            expected_version=1,
            status="in_progress",
            percent=60,
            comment="",
        )
    assert not change.changed and change.version == 1
    assert _state(plan_engine) == ("in_progress", 60, "", None, 1, 0, 0)


def test_leaving_done_clears_the_done_date(plan_engine):
    with write_session(plan_engine) as s:
        change = update_plan_item(
            session=s, actor=LEAD, item_id="A1", expected_version=1, status="in_progress"
        )
    assert change.changes["done_date"] == ["2020-04-08", None]
    assert _state(plan_engine, "A1")[:4] == ("in_progress", 100, "", None)


def test_unknown_and_retired_items_are_refused(plan_engine):
    with pytest.raises(NotFoundError), write_session(plan_engine) as s:
        update_plan_item(session=s, actor=LEAD, item_id="NOPE", expected_version=1, percent=1)
    with pytest.raises(ValidationError, match="retired"), write_session(plan_engine) as s:
        update_plan_item(session=s, actor=LEAD, item_id="A7", expected_version=1, percent=1)
