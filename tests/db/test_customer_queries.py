"""The customer view and notes on the hand-built world: content, scoping, no leaks, audit."""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import select

from lockstep.db import read_session, write_session
from lockstep.errors import NotFoundError, PermissionDenied, ValidationError
from lockstep.exports import dataframe_to_csv
from lockstep.models import AuditEntry
from lockstep.permissions import Actor
from lockstep.queries import customers as q
from lockstep.services.notes import add_note
from tests.db.rollout_world import (
    ADMIN,
    AM_A,
    AM_B,
    MANAGER_A,
    N_TENANTS,
    pinned_world,
    sql,
    tenant_facts,
)


@pytest.fixture
def world(engine, monkeypatch):
    """The hand-built world on the test's backend."""
    yield from pinned_world(engine, monkeypatch)


def status(engine, actor, ext):
    with read_session(engine) as s:
        return q.customer_status(session=s, actor=actor, tenant_external_id=ext)


def test_stage_dates_next_step_and_deadline(world):
    # T008: business, manager a; encryption: gcm_enabled on 05-10, skipping clients_upgraded.
    st = status(world, AM_A, "T008")
    enc = st.tracks[0]
    assert (enc.track, enc.stage, enc.ready) == ("encryption", "gcm_enabled", True)
    assert [(s.stage, s.reached, s.reached_at) for s in enc.steps] == [
        ("legacy_cipher", True, datetime(2020, 4, 2, 9)),
        ("clients_upgraded", True, datetime(2020, 5, 10, 9)),  # passed on the way to GCM
        ("gcm_enabled", True, datetime(2020, 5, 10, 9)),
        ("gcm_enforced", False, None),
    ]
    assert enc.next_stage_name == "Gcm enforced" and enc.next_text.startswith("Next: Gcm enforced.")
    assert "Needed by" not in enc.next_text  # ready: the deadline is met
    # T001 (pro, manager a): clients upgraded, not ready with 10 days left.
    first = status(world, AM_A, "T001").tracks[0]
    assert first.ready is False
    assert first.next_text.endswith("Needed by 30 May 2020 (10 days left).")


def test_blocked_and_rolled_back_read_plainly(world):
    blocked = status(world, ADMIN, "T004").tracks[0]  # 4 % 6 == 4
    assert blocked.stage == "blocked" and blocked.next_text.startswith("On hold since 15 May 2020")
    rolled = status(world, ADMIN, "T005").tracks[0]  # 5 % 6 == 5
    assert rolled.stage == "rolled_back"
    # Rolled back from GCM enforced: one stage back, and not ready until enforced again.
    assert rolled.next_text.startswith("Moved back to Gcm enabled on 19 May 2020; next is Gcm enforced.")
    assert rolled.ready is False


def test_e2ee_eligibility_and_blockers_in_plain_words(world):
    paid = status(world, ADMIN, "T020")  # business; cloud recording, phone dial-in
    assert paid.e2ee_eligible
    assert paid.blockers == (
        "Cloud recording is in use; E2EE meetings cannot be recorded to the cloud yet.",
        "People join by telephone; phone callers cannot take part in an E2EE meeting yet.",
    )
    free = status(world, ADMIN, "T003")  # free
    assert not free.e2ee_eligible and free.blockers == ()
    assert "paid plans" in free.e2ee_text and [t.track for t in free.tracks] == ["encryption"]


def test_a_manager_asking_for_another_managers_tenant_gets_not_found(world):
    assert tenant_facts(2)["account_manager"] != MANAGER_A
    with pytest.raises(NotFoundError) as theirs:
        status(world, AM_A, "T002")
    with pytest.raises(NotFoundError) as missing:
        status(world, AM_A, "T002X")
    assert str(theirs.value).replace("T002", "?") == str(missing.value).replace("T002X", "?")
    assert status(world, AM_B, "T002").external_id == "T002"


def test_tenant_choices_are_scoped_limited_and_searchable(world):
    with read_session(world) as s:
        mine = q.tenant_choices(session=s, actor=AM_A)
        everyone = q.tenant_choices(session=s, actor=ADMIN, limit=10)
        one_manager = q.tenant_choices(session=s, actor=ADMIN, manager=MANAGER_A)
        sneaky = q.tenant_choices(session=s, actor=AM_A, manager="b@example.com")
        found = q.tenant_choices(session=s, actor=ADMIN, search="bold")
    expected = [
        r[0]
        for r in sql(
            world,
            "SELECT external_id FROM tenants WHERE account_manager=:m ORDER BY name, external_id",
            m=MANAGER_A,
        )
    ]
    assert list(mine["external_id"]) == expected == list(one_manager["external_id"])
    assert len(everyone) == 10 and sneaky.empty
    assert list(found["name"]) == ["<b>Bold</b> Media"]


def test_add_note_own_tenant_only_and_audited(world):
    with write_session(world) as s:
        added = add_note(
            session=s, actor=AM_A, tenant_external_id="T001", body="  Call back after the freeze  "
        )
    with read_session(world) as s:
        audit = [
            (a.actor, a.entity_id, a.after["note_id"])
            for a in s.scalars(select(AuditEntry).where(AuditEntry.action == "note.add"))
        ]
    assert audit == [(MANAGER_A, "T001", added.note_id)]
    assert [n.body for n in status(world, AM_A, "T001").notes] == ["Call back after the freeze"]
    rows = sql(world, "SELECT author, body FROM tenant_notes")
    assert [tuple(r) for r in rows] == [(MANAGER_A, "Call back after the freeze")]

    for actor, ext, body, error in (
        (AM_A, "T002", "not mine", NotFoundError),
        (Actor("exec@example.com", "executive"), "T001", "hi", PermissionDenied),
        (AM_A, "T001", "   ", ValidationError),
        (AM_A, "T001", "x" * 2001, ValidationError),
    ):
        with pytest.raises(error), write_session(world) as s:
            add_note(session=s, actor=actor, tenant_external_id=ext, body=body)
    assert sql(world, "SELECT COUNT(*) FROM tenant_notes")[0][0] == 1
    assert sql(world, "SELECT COUNT(*) FROM audit_log WHERE action='note.add'")[0][0] == 1


def test_status_csv_holds_this_tenant_only_and_nothing_internal(world):
    with write_session(world) as s:
        add_note(session=s, actor=ADMIN, tenant_external_id="T007", body='=HYPERLINK("http://x")')
    st = status(world, ADMIN, "T007")  # "=Equals Labs", manager b
    rows = q.status_rows(st)
    data = dataframe_to_csv(rows).decode("utf-8-sig")
    assert "'=Equals Labs" in data and "'=HYPERLINK" in data
    others = [tenant_facts(i) for i in range(1, N_TENANTS + 1) if i != 7]
    assert not any(f"{o['external_id']}," in data or o["name"] in data for o in others)
    assert "admin@example.com" not in data and MANAGER_A not in data
    assert set(rows["section"]) == {"Account", "Encryption", "E2EE", "End-to-end encryption", "Notes"}
