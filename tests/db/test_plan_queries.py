"""Plan queries on a hand-built plan: the overdue/at-risk rules, filters, dependencies, burn-up."""

from __future__ import annotations

import math
from datetime import date, datetime

import pytest
from sqlalchemy import select

from lockstep.db import read_session, write_session
from lockstep.models import PlanItem, Program, Workstream
from lockstep.permissions import Actor
from lockstep.queries.plan import (
    dependency_conflicts,
    plan_burnup,
    plan_filter_options,
    plan_item,
    plan_item_dependencies,
    plan_item_history,
    plan_items,
    plan_key_numbers,
)
from lockstep.queries.program import program_deadlines, program_window
from lockstep.services.plan_items import update_plan_item

TODAY = date(2020, 5, 15)  # a week ago is 2020-05-08
LEAD = Actor("lead@example.com", "security_lead")


def seed_plan(session) -> None:
    """A 90-day program and eight items, each chosen to sit on one side of a rule."""
    now = datetime(2020, 4, 1)
    session.add(
        Program(id="p", name="Plan", start_date=date(2020, 4, 1), end_date=date(2020, 6, 30), synced_at=now)
    )
    session.add_all(
        [
            Workstream(code="gov", program_id="p", name="Governance"),
            Workstream(code="crypto", program_id="p", name="Cryptography"),
        ]
    )
    session.flush()

    def item(id, ws, owner, start, due, status="not_started", percent=0, done=None, deps=(), retired=None):
        return PlanItem(
            id=id,
            program_id="p",
            workstream_code=ws,
            title=f"Item {id}",
            owner=owner,
            planned_start=start,
            due_date=due,
            status=status,
            percent=percent,
            done_date=done,
            depends_on=list(deps),
            retired_at=retired,
            created_at=now,
            updated_at=now,
        )

    d = date
    session.add_all(
        [
            # done on time, long ago
            item("A1", "gov", "CEO", d(2020, 4, 1), d(2020, 4, 10), "done", 100, d(2020, 4, 8)),
            # done late this week: overdue a week ago, done now
            item("A2", "gov", "CTO", d(2020, 4, 1), d(2020, 4, 20), "done", 100, d(2020, 5, 12)),
            # overdue now (due 05-10); a week ago due within 7 days but 60% -> not at risk
            item("A3", "crypto", "CTO", d(2020, 4, 15), d(2020, 5, 10), "in_progress", 60),
            # due in 5 days at 30% -> at risk now; a week ago not yet within the window
            item("A4", "crypto", "CTO", d(2020, 5, 1), d(2020, 5, 20), "in_progress", 30),
            # blocked -> at risk by status; depends on A3 but not started, so no flag
            item("A5", "crypto", "CISO", d(2020, 5, 1), d(2020, 6, 30), "blocked", 10, deps=["A3"]),
            # under way while A3 is not done -> flagged; A1 is done -> fine
            item("A6", "gov", "CEO", d(2020, 5, 1), d(2020, 6, 1), "in_progress", 20, deps=["A3", "A1"]),
            # retired: would be overdue, must not count
            item("A7", "gov", "CEO", d(2020, 4, 1), d(2020, 4, 5), retired=datetime(2020, 4, 20)),
            # no due date
            item("A8", "gov", "CFO", None, None),
        ]
    )


@pytest.fixture
def plan_engine(engine):
    with write_session(engine) as s:
        seed_plan(s)
    return engine


def test_key_numbers_now_and_a_week_ago(plan_engine):
    with read_session(plan_engine) as s:
        k = plan_key_numbers(session=s, today=TODAY).set_index("measure")
    assert k.loc["done"].tolist() == [2, 1]
    assert k.loc["overdue"].tolist() == [1, 1]  # A3 now; A2 a week ago
    assert k.loc["at_risk"].tolist() == [2, 1]  # A4, A5 now; A5 a week ago
    assert k.loc["total", "now"] == 7


def test_items_flags_and_order(plan_engine):
    with read_session(plan_engine) as s:
        items = plan_items(session=s, today=TODAY).set_index("id")
    assert list(items.index) == ["A1", "A2", "A3", "A4", "A6", "A5", "A8"]
    assert items.index[items["overdue"]].tolist() == ["A3"]
    assert sorted(items.index[items["at_risk"]]) == ["A4", "A5"]
    assert items.loc["A2", "slip_days"] == 22
    assert items.loc["A3", "slip_days"] == 5
    assert items.loc["A1", "slip_days"] == 0
    assert items.loc["A6", "depends_on"] == ["A3", "A1"]
    assert items.loc["A3", "workstream_name"] == "Cryptography"


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"workstreams": ("crypto",)}, ["A3", "A4", "A5"]),
        ({"owners": ("CTO",)}, ["A2", "A3", "A4"]),
        ({"statuses": ("done",)}, ["A1", "A2"]),
        ({"overdue_only": True}, ["A3"]),
        ({"owners": ("CTO",), "statuses": ("in_progress",)}, ["A3", "A4"]),
        ({"include_retired": True, "workstreams": ("gov",)}, ["A1", "A2", "A6", "A7", "A8"]),
    ],
)
def test_item_filters(plan_engine, filters, expected):
    with read_session(plan_engine) as s:
        items = plan_items(session=s, today=TODAY, **filters)
    assert sorted(items["id"]) == expected


def test_retired_item_is_marked_when_shown(plan_engine):
    with read_session(plan_engine) as s:
        items = plan_items(session=s, today=TODAY, include_retired=True).set_index("id")
    assert items.loc["A7", "retired"] and not items.loc["A1", "retired"]


def test_filter_options_leave_out_retired_owners(plan_engine):
    with read_session(plan_engine) as s:
        options = plan_filter_options(session=s)
    assert options["owners"] == ["CEO", "CFO", "CISO", "CTO"]
    assert options["workstreams"] == [("crypto", "Cryptography"), ("gov", "Governance")]


def test_dependencies_both_ways_with_flags(plan_engine):
    with read_session(plan_engine) as s:
        a3 = plan_item_dependencies(session=s, item_id="A3")
        a6 = plan_item_dependencies(session=s, item_id="A6")
        conflicts = dependency_conflicts(session=s)
    assert a3[["relation", "id"]].values.tolist() == [["needed by", "A5"], ["needed by", "A6"]]
    assert a3.set_index("id").loc["A5", "flag"] == ""
    assert a3.set_index("id").loc["A6", "flag"] == (
        "A6 is in progress while A3, which it depends on, is not done (in progress)"
    )
    assert a6[["relation", "id"]].values.tolist() == [["depends on", "A3"], ["depends on", "A1"]]
    assert a6.set_index("id").loc["A1", "flag"] == ""
    with read_session(plan_engine) as s:
        titles = dict(s.execute(select(PlanItem.id, PlanItem.title)).all())
    expected = [["A6", titles["A6"], "in_progress", "A3", titles["A3"], "in_progress"]]
    assert conflicts.values.tolist() == expected


def test_burnup_counts_by_program_week(plan_engine):
    with read_session(plan_engine) as s:
        b = plan_burnup(session=s, start=date(2020, 4, 1), end=date(2020, 6, 30), today=TODAY)
    assert len(b) == 13
    assert b["label"].iloc[0] == "W1 (Apr 1)" and b["label"].iloc[6] == "W7 (May 13)"
    assert b["week_end"].iloc[-1] == date(2020, 6, 30)
    assert b["planned"].tolist() == [0, 1, 2, 2, 2, 3, 3, 4, 5, 5, 5, 5, 6]
    assert b["done"].iloc[:7].tolist() == [0, 1, 1, 1, 1, 2, 2]
    assert all(math.isnan(v) for v in b["done"].iloc[7:])


def test_history_newest_first_in_plain_words(plan_engine):
    with write_session(plan_engine) as s:
        update_plan_item(session=s, actor=LEAD, item_id="A4", expected_version=1, percent=40)
    with write_session(plan_engine) as s:
        update_plan_item(
            session=s, actor=LEAD, item_id="A4", expected_version=2, status="at_risk", comment="slow"
        )
    with read_session(plan_engine) as s:
        history = plan_item_history(session=s, item_id="A4")
        item = plan_item(session=s, item_id="A4")
    assert history["version"].tolist() == [3, 2]
    assert history["changes"].iloc[0] == "status: in_progress → at_risk; comment: — → slow"
    assert history["changes"].iloc[1] == "percent: 30 → 40"
    assert history["changed_by"].tolist() == [LEAD.email, LEAD.email]
    assert item["version"] == 3 and item["status"] == "at_risk"


def test_program_window_and_deadlines(plan_engine, monkeypatch):
    from lockstep.config import get_settings
    from lockstep.models import Track

    monkeypatch.setenv("LOCKSTEP_AS_OF", "2020-05-15")
    get_settings.cache_clear()
    try:
        with write_session(plan_engine) as s:
            s.add(Track(code="enc", program_id="p", name="Encryption", tiers=["free"],
                        deadline=date(2020, 5, 30)))
        with read_session(plan_engine) as s:
            window = program_window(session=s)
            deadlines = program_deadlines(session=s)
    finally:
        get_settings.cache_clear()
    assert (window.day, window.days_total, window.days_left) == (45, 91, 46)
    assert deadlines.values.tolist() == [
        ["Encryption cut-over", date(2020, 5, 30), 15],
        ["Program end", date(2020, 6, 30), 46],
    ]
