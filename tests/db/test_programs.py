"""Two programs side by side: each sync, query, closed week and report keeps to its own program.

The 90-day plan (zoom-2020, tracks encryption and e2ee) and a second, later program
(tests/fixtures/e2ee-preview-2020.yaml: e2ee-preview-2020, track e2ee_preview) share one
database, its tiers and its tenants.
"""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import pytest
import yaml
from sqlalchemy import func, select

from lockstep.config import ROOT, get_settings
from lockstep.db import read_session, write_session
from lockstep.errors import NotFoundError, ValidationError
from lockstep.models import PlanItem, Program, SnapshotWeek, Track, WeeklySnapshot, Workstream
from lockstep.permissions import SYSTEM, Actor
from lockstep.plan import sync_plan_file
from lockstep.queries import overview, plan, rollout, weekly
from lockstep.queries.customers import customer_status
from lockstep.queries.program import (
    default_program,
    program_deadlines,
    program_window,
    programs,
    resolve_program,
)
from lockstep.reports.weekly import weekly_report
from lockstep.services.plan_items import update_plan_item
from lockstep.services.rollout import record_event
from lockstep.services.snapshots import backfill_weeks
from tests.builders import add_tenants

FIRST = ROOT / "plan" / "90-day-plan.yaml"
SECOND = ROOT / "tests" / "fixtures" / "e2ee-preview-2020.yaml"
A, B = "zoom-2020", "e2ee-preview-2020"
LEAD = Actor(email="lead@lockstep.example", role="security_lead")
N_TENANTS = 20


@pytest.fixture
def as_of(monkeypatch):
    """Set the dashboard's today (LOCKSTEP_AS_OF) for the test; returns a setter."""

    def set_today(day: str) -> None:
        monkeypatch.setenv("LOCKSTEP_AS_OF", day)
        get_settings.cache_clear()

    yield set_today
    monkeypatch.delenv("LOCKSTEP_AS_OF", raising=False)
    get_settings.cache_clear()


@pytest.fixture
def two(engine, as_of):
    """Both programs synced, 20 tenants on every track, today 2020-11-15 (inside the second)."""
    as_of("2020-11-15")
    sync_plan_file(FIRST, engine=engine, actor=LEAD)
    sync_plan_file(SECOND, engine=engine, actor=LEAD)
    with write_session(engine) as s:
        add_tenants(s, N_TENANTS, seed=3)
    return engine


def q(engine, fn, **kw):
    with read_session(engine) as s:
        return fn(session=s, **kw)


def _items(engine, program: str) -> dict[str, tuple]:
    with read_session(engine) as s:
        rows = s.execute(
            select(PlanItem.id, PlanItem.status, PlanItem.version, PlanItem.retired_at).where(
                PlanItem.program_id == program
            )
        ).all()
    return {r.id: (r.status, r.version, r.retired_at) for r in rows}


def test_a_second_program_is_added_beside_the_first(two):
    listed = q(two, programs)
    assert list(listed["id"]) == [A, B]
    assert set(_items(two, A)) == {f"Z{n:02d}" for n in range(1, 29)}
    assert set(_items(two, B)) == {"P01", "P02", "P03", "P04"}
    with read_session(two) as s:
        tracks = dict(s.execute(select(Track.code, Track.program_id)).all())
        workstreams = dict(s.execute(select(Workstream.code, Workstream.program_id)).all())
    assert tracks == {"encryption": A, "e2ee": A, "e2ee_preview": B}
    assert workstreams["e2ee_preview"] == B and workstreams["crypto"] == A


def test_resyncing_one_program_leaves_the_other_alone(two, tmp_path):
    with write_session(two) as s:
        update_plan_item(
            session=s, actor=LEAD, item_id="P03", expected_version=1, status="in_progress", percent=40
        )
    first_before, second_before = _items(two, A), _items(two, B)
    again = sync_plan_file(FIRST, engine=two, actor=LEAD)
    assert again.retired == [] and not again.changed
    assert _items(two, B) == second_before  # P03 keeps its edit and version
    # The second program without P04: only P04 is retired, the first program's items are not.
    data = yaml.safe_load(SECOND.read_text())
    data["items"] = [i for i in data["items"] if i["id"] != "P04"]
    path = tmp_path / "second.yaml"
    path.write_text(yaml.safe_dump(data))
    result = sync_plan_file(path, engine=two, actor=LEAD)
    assert result.retired == ["P04"]
    assert _items(two, A) == first_before
    assert _items(two, B)["P03"][:2] == ("in_progress", 2)


def _second_with(tmp_path: Path, change) -> Path:
    data = yaml.safe_load(SECOND.read_text())
    change(data)
    path = tmp_path / "second.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (lambda d: d["items"][3].update(id="Z05"), "item 'Z05' belongs to program 'zoom-2020'"),
        (
            lambda d: (
                d["workstreams"][0].update(id="crypto"),
                [i.update(workstream="crypto") for i in d["items"]],
            ),
            "workstream 'crypto' belongs to program 'zoom-2020'",
        ),
        (lambda d: d["tracks"][0].update(id="e2ee"), "track 'e2ee' belongs to program 'zoom-2020'"),
    ],
    ids=["item", "workstream", "track"],
)
def test_an_id_another_program_owns_is_refused_and_nothing_is_written(two, tmp_path, change, named):
    path = _second_with(tmp_path, lambda d: (d["program"].update(name="Renamed"), change(d)))
    before = (_items(two, A), _items(two, B))
    with pytest.raises(ValidationError, match="nothing was changed") as refused:
        sync_plan_file(path, engine=two, actor=LEAD)
    assert named in str(refused.value)
    assert (_items(two, A), _items(two, B)) == before
    with read_session(two) as s:
        assert s.scalar(select(Program.name).where(Program.id == B)) == "E2EE technical preview (late 2020)"


def test_the_default_program_is_the_one_running_today_else_the_latest(two, as_of):
    assert q(two, default_program) == B  # 2020-11-15
    as_of("2020-05-01")
    assert q(two, default_program) == A
    as_of("2020-08-01")  # between the two: the latest start
    assert q(two, default_program) == B
    assert q(two, program_window, program=A).name == "Zoom 90-day security plan (2020)"
    assert q(two, program_window).id == B
    with pytest.raises(
        NotFoundError, match="no program 'nope'; known programs: zoom-2020, e2ee-preview-2020"
    ):
        q(two, resolve_program, program="nope")


def test_plan_and_overview_numbers_are_apart(two):
    first = q(two, plan.plan_key_numbers, program=A).set_index("measure")
    second = q(two, plan.plan_key_numbers, program=B).set_index("measure")
    assert first.loc["total", "now"] == 28
    assert second.loc["total", "now"] == 4
    assert second.loc["done", "now"] == 2  # P01, P02 seeded done
    default = q(two, plan.plan_key_numbers).set_index("measure")  # today is in the second program
    assert default.loc["total", "now"] == 4
    assert set(q(two, plan.plan_items, program=B)["id"]) == {"P01", "P02", "P03", "P04"}
    assert [c for c, _ in q(two, plan.plan_filter_options, program=B)["workstreams"]] == ["e2ee_preview"]
    assert q(two, plan.dependency_conflicts, program=B).empty
    burn = q(two, plan.plan_burnup, start=date(2020, 10, 14), end=date(2020, 12, 31), program=B)
    assert burn["planned"].iloc[-1] == 4
    deadlines_a = q(two, program_deadlines, program=A)
    deadlines_b = q(two, program_deadlines, program=B)
    assert "AES-256-GCM encryption cut-over" in set(deadlines_a["what"])
    assert list(deadlines_b["what"]) == ["Program end"]
    assert list(q(two, rollout.tracks, program=A)["code"]) == ["encryption", "e2ee"]
    assert list(q(two, rollout.tracks, program=B)["code"]) == ["e2ee_preview"]
    mix = q(two, overview.track_stage_mix, actor=SYSTEM, track="e2ee_preview")
    assert mix.total == N_TENANTS  # every tier is on the preview
    paid_e2ee = q(two, overview.track_stage_mix, actor=SYSTEM, track="e2ee").total
    assert paid_e2ee < N_TENANTS


def test_each_program_closes_its_own_weeks_and_restates_only_them(two):
    with write_session(two) as s:
        first = backfill_weeks(session=s, actor=LEAD, program=A)
    with write_session(two) as s:
        second = backfill_weeks(session=s, actor=LEAD, program=B)
    # The first stops at its window's last week; the second at the week before today's.
    assert (first[0].week_label, first[-1].week_label) == ("2020-W14", "2020-W27")
    assert (second[0].week_label, second[-1].week_label) == ("2020-W42", "2020-W45")
    with read_session(two) as s:
        by_program = dict(
            s.execute(select(SnapshotWeek.program_id, func.count()).group_by(SnapshotWeek.program_id)).all()
        )
        tracks = dict(
            s.execute(
                select(WeeklySnapshot.track_code, func.min(WeeklySnapshot.program_id)).group_by(
                    WeeklySnapshot.track_code
                )
            ).all()
        )
    assert by_program == {A: 14, B: 4}
    assert tracks == {"encryption": A, "e2ee": A, "e2ee_preview": B}
    assert list(q(two, weekly.closed_weeks, program=B)["week_label"]) == [f"2020-W{w}" for w in range(42, 46)]
    assert len(q(two, weekly.closed_weeks, program=A)) == 14
    assert len(q(two, weekly.closed_weeks)) == 4  # the default: the second program

    # A back-dated event on the second program's track restates its week, not the first's.
    tenant = "t3-00001"
    with write_session(two) as s:
        record_event(
            session=s,
            actor=LEAD,
            tenant_external_id=tenant,
            track="e2ee_preview",
            stage="enabled",
            occurred_at=datetime(2020, 10, 20, 12),
        )
    restated_b = q(two, weekly.restated_numbers, program=B)
    assert set(restated_b["week_label"]) == {"2020-W43", "2020-W44", "2020-W45"}
    assert set(restated_b["track_code"]) == {"e2ee_preview"}
    assert q(two, weekly.restated_numbers, program=A).empty
    assert not q(two, weekly.closed_weeks, program=A)["restated"].any()
    mix_b = q(two, weekly.stage_mix_by_week, track="e2ee_preview")
    w45 = mix_b[mix_b["week_label"] == "2020-W45"].set_index("stage_code")
    assert w45.loc["enabled", "n_current"] == 1 and w45.loc["enabled", "n_reported"] == 0

    # The weekly report of each program speaks of its own weeks and tracks.
    report_b = q(two, weekly_report, actor=SYSTEM, week_start=date(2020, 11, 2), program=B)
    assert report_b.track_names == {"e2ee_preview": "E2EE technical preview"}
    assert set(report_b.restated["track_code"]) == {"e2ee_preview"}
    report_a = q(two, weekly_report, actor=SYSTEM, week_start=date(2020, 6, 29), program=A)
    assert set(report_a.track_names) == {"encryption", "e2ee"}
    assert report_a.restated.empty
    with pytest.raises(NotFoundError, match="2020-W45 is not closed in program 'zoom-2020'"):
        q(two, weekly_report, actor=SYSTEM, week_start=date(2020, 11, 2), program=A)


def test_the_customer_view_shows_the_programs_tracks(two):
    first = q(two, customer_status, actor=SYSTEM, tenant_external_id="t3-00001", program=A)
    second = q(two, customer_status, actor=SYSTEM, tenant_external_id="t3-00001", program=B)
    assert [t.track for t in first.tracks] == ["encryption", "e2ee"]
    assert [t.track for t in second.tracks] == ["e2ee_preview"]
