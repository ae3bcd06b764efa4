"""Plan sync: idempotent upsert by stable id; the YAML owns the plan, the database owns what happened."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import pytest
import yaml
from sqlalchemy import func, select

from lockstep.config import ROOT
from lockstep.db import read_session, write_session
from lockstep.errors import PermissionDenied, ValidationError
from lockstep.models import (
    AuditEntry,
    PlanItem,
    PlanItemUpdate,
    Program,
    Tenant,
    Tier,
    Track,
    TrackStage,
    Workstream,
)
from lockstep.permissions import Actor
from lockstep.plan import load_plan, sync_plan, sync_plan_file
from lockstep.services import audit
from lockstep.services.rollout import record_event

SHIPPED_PLAN = ROOT / "plan" / "90-day-plan.yaml"
ALL_IDS = [f"Z{n:02d}" for n in range(1, 29)]
LEAD = Actor(email="lead@lockstep.example", role="security_lead")


def plan_data() -> dict:
    """The shipped plan as plain data, to edit and write back."""
    return yaml.safe_load(SHIPPED_PLAN.read_text())


def write(tmp_path: Path, data: dict) -> Path:
    """Write `data` as the plan file the sync reads."""
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def entry(data: dict, item_id: str) -> dict:
    """The item with `item_id` in plan data."""
    return next(i for i in data["items"] if i["id"] == item_id)


def count(session, model) -> int:
    """Rows in `model`'s table."""
    return session.scalar(select(func.count()).select_from(model))


def updates_of(session, item_id: str) -> list[PlanItemUpdate]:
    """An item's saved changes, oldest first."""
    return list(session.scalars(
        select(PlanItemUpdate).where(PlanItemUpdate.item_id == item_id).order_by(PlanItemUpdate.id)
    ))


def audit_entries(session) -> list[AuditEntry]:
    """The audit log, oldest first."""
    return list(session.scalars(select(AuditEntry).order_by(AuditEntry.id)))


def test_first_sync_adds_everything(engine):
    result = sync_plan_file(SHIPPED_PLAN, engine=engine, actor=LEAD)

    assert result.added == ALL_IDS
    assert result.updated == result.unchanged == result.retired == result.restored == []
    with read_session(engine) as s:
        program = s.get(Program, "zoom-2020")
        assert (program.start_date, program.end_date) == (date(2020, 4, 1), date(2020, 6, 30))
        tiers = s.scalars(select(Tier).order_by(Tier.position)).all()
        assert [(t.code, t.paid) for t in tiers] == [
            ("free", False), ("pro", True), ("business", True), ("enterprise", True), ("education", True)]
        assert [t.code for t in s.scalars(select(Track).order_by(Track.position))] == ["encryption", "e2ee"]
        encryption, e2ee = s.get(Track, "encryption"), s.get(Track, "e2ee")
        assert (encryption.deadline, encryption.ready_stage) == (date(2020, 5, 30), "gcm_enabled")
        assert e2ee.tiers == ["pro", "business", "enterprise", "education"] and e2ee.deadline is None
        assert "web_client" in e2ee.blocking_features
        stages = s.execute(
            select(TrackStage.code, TrackStage.position, TrackStage.is_side)
            .where(TrackStage.track_code == "encryption").order_by(TrackStage.position)
        ).all()
        assert [tuple(r) for r in stages] == [
            ("legacy_cipher", 0, False), ("clients_upgraded", 1, False), ("gcm_enabled", 2, False),
            ("gcm_enforced", 3, False), ("blocked", 1000, True), ("rolled_back", 1001, True)]
        assert count(s, TrackStage) == 6 + 5
        assert count(s, Workstream) == 12

        z13 = s.get(PlanItem, "Z13")
        assert (z13.status, z13.percent, z13.done_date) == ("done", 100, date(2020, 5, 30))
        assert (z13.depends_on, z13.version, z13.workstream_code) == (["Z10"], 1, "crypto")
        z23 = s.get(PlanItem, "Z23")  # done in December in reality: seeded open so the slip shows
        assert (z23.status, z23.done_date, z23.due_date) == ("in_progress", None, date(2020, 6, 30))
        assert "Zoom misses target" in z23.source and "Note: Done 2020-12-18" in z23.source
        assert count(s, PlanItemUpdate) == 0

        [entry_] = audit_entries(s)
        assert (entry_.action, entry_.entity_type, entry_.entity_id, entry_.actor) == (
            "plan.sync", "plan", "zoom-2020", LEAD.email)
        assert entry_.after["counts"]["added"] == 28 and entry_.after["added"] == ALL_IDS
        assert entry_.before["program"] is None
        assert audit.verify(s).ok


def test_second_sync_of_the_same_file_changes_nothing(engine):
    sync_plan_file(SHIPPED_PLAN, engine=engine, actor=LEAD)
    result = sync_plan_file(SHIPPED_PLAN, engine=engine, actor=LEAD)

    assert result.unchanged == ALL_IDS and not result.changed
    with read_session(engine) as s:
        assert set(s.scalars(select(PlanItem.version))) == {1}
        assert count(s, PlanItemUpdate) == 0
        # Every sync is audited, also one that changed nothing: the log shows who synced when.
        first, second = audit_entries(s)
        assert second.after["counts"]["unchanged"] == 28
        assert second.after["counts"]["added"] == second.after["counts"]["updated"] == 0
        assert second.before["active_items"] == 28


def test_editing_a_planned_field_bumps_version_and_records_the_change(engine, tmp_path):
    sync_plan_file(SHIPPED_PLAN, engine=engine, actor=LEAD)
    data = plan_data()
    old_title = entry(data, "Z13")["title"]
    entry(data, "Z13")["title"] = "GCM everywhere"
    entry(data, "Z13")["due"] = date(2020, 6, 6)

    result = sync_plan_file(write(tmp_path, data), engine=engine, actor=LEAD)

    assert result.updated == ["Z13"] and len(result.unchanged) == 27
    with read_session(engine) as s:
        z13 = s.get(PlanItem, "Z13")
        assert (z13.title, z13.due_date, z13.version, z13.updated_by) == (
            "GCM everywhere", date(2020, 6, 6), 2, LEAD.email)
        [update] = updates_of(s, "Z13")
        assert (update.version, update.changed_by) == (2, LEAD.email)
        assert update.changes == {"title": [old_title, "GCM everywhere"],
                                  "due_date": ["2020-05-30", "2020-06-06"]}
        assert audit_entries(s)[-1].after["updated"] == ["Z13"]


def test_what_happened_in_the_database_survives_a_resync(engine, tmp_path):
    sync_plan_file(SHIPPED_PLAN, engine=engine, actor=LEAD)
    with write_session(engine) as s:
        z23 = s.get(PlanItem, "Z23")
        z23.status, z23.percent, z23.done_date = "done", 100, date(2020, 12, 18)
        z23.comment = "published late"
    data = plan_data()
    # The YAML's initial values apply only on creation, so these must be ignored...
    entry(data, "Z23").update(status="not_started", percent=0)
    # ...also when a planned field of the same item changes.
    entry(data, "Z23")["owner"] = "Chief Compliance Officer"

    result = sync_plan_file(write(tmp_path, data), engine=engine, actor=LEAD)

    assert result.updated == ["Z23"]
    with read_session(engine) as s:
        z23 = s.get(PlanItem, "Z23")
        assert (z23.status, z23.percent, z23.comment, z23.done_date) == (
            "done", 100, "published late", date(2020, 12, 18))
        assert z23.owner == "Chief Compliance Officer"
        assert list(updates_of(s, "Z23")[-1].changes) == ["owner"]


def test_a_removed_item_is_retired_with_its_history_and_restored_when_it_returns(engine, tmp_path):
    data = plan_data()
    entry(data, "Z28")["title"] = "E2EE phases 3 and 4"
    sync_plan_file(SHIPPED_PLAN, engine=engine, actor=LEAD)
    sync_plan_file(write(tmp_path, data), engine=engine, actor=LEAD)

    without = plan_data()
    without["items"] = [i for i in without["items"] if i["id"] != "Z28"]
    result = sync_plan_file(write(tmp_path, without), engine=engine, actor=LEAD)

    assert result.retired == ["Z28"] and len(result.unchanged) == 27
    with read_session(engine) as s:
        z28 = s.get(PlanItem, "Z28")
        assert z28 is not None and z28.retired_at is not None and z28.version == 3
        title_change, retirement = updates_of(s, "Z28")
        assert "title" in title_change.changes
        assert retirement.changes["retired_at"][0] is None
    again = sync_plan_file(write(tmp_path, without), engine=engine, actor=LEAD)
    assert again.retired == [] and not again.changed

    result = sync_plan_file(write(tmp_path, data), engine=engine, actor=LEAD)

    assert result.restored == ["Z28"] and result.updated == []
    with read_session(engine) as s:
        z28 = s.get(PlanItem, "Z28")
        assert (z28.retired_at, z28.version, z28.title) == (None, 4, "E2EE phases 3 and 4")
        assert len(updates_of(s, "Z28")) == 3
        assert updates_of(s, "Z28")[-1].changes["retired_at"][1] is None


def test_an_executive_may_not_sync(engine):
    executive = Actor(email="exec@lockstep.example", role="executive")
    with pytest.raises(PermissionDenied, match="may not plan sync"):
        sync_plan_file(SHIPPED_PLAN, engine=engine, actor=executive)
    plan = load_plan(SHIPPED_PLAN)
    with pytest.raises(PermissionDenied), write_session(engine) as s:
        sync_plan(session=s, plan=plan, actor=executive)
    with read_session(engine) as s:
        assert count(s, Program) == count(s, PlanItem) == count(s, AuditEntry) == 0


def _tenant_at_pilot(engine) -> None:
    with write_session(engine) as s:
        s.add(Tenant(external_id="T-1", name="Acme", tier="pro", region="us", seats=10,
                     account_manager="am@lockstep.example", created_at=datetime(2020, 4, 1),
                     updated_at=datetime(2020, 4, 1)))
        s.flush()
        record_event(session=s, actor=LEAD, tenant_external_id="T-1", track="e2ee", stage="pilot",
                     occurred_at=datetime(2020, 6, 1, 12))


def test_a_stage_in_use_cannot_be_removed(engine, tmp_path):
    sync_plan_file(SHIPPED_PLAN, engine=engine, actor=LEAD)
    _tenant_at_pilot(engine)
    data = plan_data()
    e2ee = next(t for t in data["tracks"] if t["id"] == "e2ee")
    e2ee["stages"] = [st for st in e2ee["stages"] if st["id"] != "pilot"]
    entry(data, "Z13")["title"] = "changed in the same sync"

    with pytest.raises(ValidationError, match=r"track 'e2ee', stage 'pilot' .* 1 rollout events"):
        sync_plan_file(write(tmp_path, data), engine=engine, actor=LEAD)

    with read_session(engine) as s:  # nothing half-landed
        assert s.get(TrackStage, ("e2ee", "pilot")) is not None
        assert s.get(PlanItem, "Z13").version == 1
        assert [e.action for e in audit_entries(s)] == ["plan.sync", "rollout.record_event"]


def test_an_unused_stage_is_removed_and_the_order_follows_the_file(engine, tmp_path):
    sync_plan_file(SHIPPED_PLAN, engine=engine, actor=LEAD)
    data = plan_data()
    encryption = next(t for t in data["tracks"] if t["id"] == "encryption")
    encryption["stages"] = [st for st in encryption["stages"] if st["id"] != "clients_upgraded"]

    result = sync_plan_file(write(tmp_path, data), engine=engine, actor=LEAD)

    assert result.reference_removed == ["stage:encryption.clients_upgraded"]
    assert "stage:encryption.gcm_enabled" in result.reference_updated
    with read_session(engine) as s:
        ordered = s.scalars(
            select(TrackStage.code)
            .where(TrackStage.track_code == "encryption", TrackStage.is_side.is_(False))
            .order_by(TrackStage.position)
        ).all()
        assert ordered == ["legacy_cipher", "gcm_enabled", "gcm_enforced"]


def test_a_second_program_reusing_the_first_ones_ids_is_refused(engine, tmp_path):
    # Ids are unique across programs: the same file under a new program id owns nothing.
    sync_plan_file(SHIPPED_PLAN, engine=engine, actor=LEAD)
    data = plan_data()
    data["program"]["id"] = "zoom-2021"
    with pytest.raises(ValidationError) as refused:
        sync_plan_file(write(tmp_path, data), engine=engine, actor=LEAD)
    message = str(refused.value)
    assert "item 'Z01' belongs to program 'zoom-2020'" in message
    assert "track 'encryption' belongs to program 'zoom-2020'" in message
    assert "nothing was changed" in message
    with read_session(engine) as s:
        assert s.scalars(select(Program.id)).all() == ["zoom-2020"]
