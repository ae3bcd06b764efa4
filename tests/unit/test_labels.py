"""Codes in words, numbers and dates for people, and metric deltas coloured by what they mean."""

from __future__ import annotations

from datetime import date, datetime

import pandas as pd
import pytest

from lockstep import labels as L
from lockstep.models import PLAN_STATUSES
from lockstep.tables import (
    customer_steps_table,
    dependency_conflicts_table,
    overdue_items_table,
    plan_items_table,
    share_links_table,
    tenant_list_table,
)

NAMES = L.Names(
    tiers={"business": "Business", "free": "Free (Basic)"}, people={"dana.lee@lockstep.example": "Dana Lee"}
)


def test_every_plan_status_has_words_and_no_code_left():
    for status in PLAN_STATUSES:
        label = L.plan_status_label(status)
        assert "_" not in label and label[0].isupper()
    assert L.plan_status_label("in_progress") == "In progress"
    assert L.looks_like_code("in_progress") and not L.looks_like_code("In progress")


@pytest.mark.parametrize("empty", [None, float("nan"), pd.NA, pd.NaT])
def test_missing_values_never_read_none(empty):
    assert L.plan_status_label(empty) == L.MISSING
    assert L.fmt_date(empty) == L.MISSING
    assert L.fmt_int(empty) == L.MISSING
    assert L.person_label(empty, {}) == L.MISSING


def test_names_for_codes_and_people():
    assert NAMES.tier("business") == "Business" and NAMES.tier("new_tier") == "New tier"
    assert NAMES.region("eu") == "Europe" and NAMES.region("xx") == "XX"
    assert NAMES.person("dana.lee@lockstep.example") == "Dana Lee"
    assert NAMES.person("someone@else.example") == "someone@else.example"
    assert NAMES.person(L.SELF_SERVE) == L.SELF_SERVE_LABEL
    assert L.owner_label("CTO (named)") == "CTO" and L.owner_label("CPO (inferred)") == "CPO"
    assert L.owner_label("Deputy CIO, council chair (named)") == "Deputy CIO, council chair"


def test_numbers_and_dates_for_people():
    assert L.fmt_int(1217) == "1,217" and L.fmt_seats(6571) == "6,571 seats" and L.fmt_seats(1) == "1 seat"
    assert L.fmt_date(date(2020, 6, 5)) == "5 Jun 2020"
    assert L.fmt_date(pd.Timestamp("2020-06-05 13:00")) == "5 Jun 2020"
    assert L.fmt_datetime(datetime(2020, 6, 5, 9, 3)) == "5 Jun 2020 09:03 UTC"
    assert L.days_left_label(-31) == "31 days ago" and L.days_left_label(1) == "1 day left"
    assert L.days_left_label(0) == "today"


def test_a_change_that_shows_as_zero_is_grey_not_green():
    assert L.points_delta(0.04) == {"delta": "±0.0 pts", "delta_color": "gray", "delta_arrow": "off"}
    assert L.points_delta(-0.04)["delta_color"] == "gray"
    assert L.points_delta(0.3) == {"delta": "+0.3 pts", "delta_color": "normal"}
    assert L.points_delta(-1.25)["delta"] == "-1.2 pts"
    assert L.points_delta(None) == {"delta": None}


def test_count_deltas_follow_what_is_good():
    assert L.count_delta(3) == {"delta": 3, "delta_color": "normal"}
    assert L.count_delta(3, higher_is_better=False)["delta_color"] == "inverse"
    # A stage tenants pass through (GCM enabled): a fall is them moving on, not bad news.
    assert L.count_delta(-2, higher_is_better=None)["delta_color"] == "gray"


def test_deadline_delta_is_red_after_and_green_before():
    assert L.deadline_delta(43) == {
        "delta": "43 days after the deadline",
        "delta_color": "red",
        "delta_arrow": "off",
    }
    assert L.deadline_delta(-1)["delta"] == "1 day before the deadline"
    assert L.deadline_delta(-1)["delta_color"] == "green"
    assert L.deadline_delta(0)["delta_color"] == "gray"


def test_done_against_due_never_reads_as_a_fraction():
    shown = L.done_of_due(8, 4)
    assert shown["value"] == "8" and shown["delta"] == "4 due by then, 4 done early"
    assert "/" not in shown["value"] and shown["delta_color"] == "gray"
    assert L.done_of_due(14, 22)["delta"] == "22 due by then, 8 behind"


@pytest.mark.parametrize(
    "stages, current, reached, expected",
    [
        (["legacy", "upgraded", "enabled", "enforced", "blocked", "rolled_back"], "upgraded", None, 2),
        (["legacy", "upgraded", "enabled", "enforced", "blocked", "rolled_back"], "enforced", None, 3),
        (["legacy", "upgraded", "enabled", "enforced", "blocked", "rolled_back"], "blocked", "enabled", 3),
        (["legacy", "upgraded", "enabled", "enforced", "blocked", "rolled_back"], None, None, 0),
    ],
)
def test_record_event_starts_at_the_next_stage(stages, current, reached, expected):
    assert L.next_stage_index(stages, current, reached=reached) == expected


def test_clock_note_only_when_the_clocks_differ():
    assert L.clock_note(date(2020, 6, 30), date(2020, 6, 30)) is None
    note = L.clock_note(date(2020, 6, 30), date(2026, 12, 2))
    assert "30 Jun 2020" in note and "2 Dec 2026" in note


def _no_codes(frame: pd.DataFrame) -> list[str]:
    cells = [str(v) for v in frame.to_numpy().ravel()] + list(frame.columns)
    return [c for c in cells if c in ("None", "nan", "NaT") or L.looks_like_code(c)]


def test_plan_table_in_words():
    items = pd.DataFrame(
        {
            "id": ["Z1", "Z2"],
            "title": ["A", "B"],
            "owner": ["CTO (named)", None],
            "status": ["in_progress", "not_started"],
            "percent": [40, 0],
            "due_date": [date(2020, 6, 28), None],
            "done_date": [None, None],
            "slip_days": [2, 0],
            "overdue": [True, False],
            "retired": [False, False],
        }
    )
    shown = plan_items_table(items)
    assert list(shown.columns) == ["Id", "Title", "Owner", "Status", "Done %", "Due", "Done", "Slip"]
    assert shown["Status"].tolist() == ["In progress, overdue", "Not started"]
    assert shown["Owner"].tolist() == ["CTO", L.MISSING] and shown["Due"].tolist() == [
        "28 Jun 2020",
        L.MISSING,
    ]
    assert _no_codes(shown) == []


def test_dependency_warnings_name_items_and_state_them_right():
    conflicts = pd.DataFrame(
        [["Z04", "Form council", "done", "Z01", "Announce plan", "in_progress"]],
        columns=["id", "title", "status", "dependency", "dependency_title", "dependency_status"],
    )
    shown = dependency_conflicts_table(conflicts)
    assert shown.iloc[0].tolist() == ["Z04 · Form council", "Done", "Z01 · Announce plan", "In progress"]


def test_tables_show_names_not_codes():
    rows = pd.DataFrame(
        [
            [
                "T1",
                "Acme",
                "business",
                "eu",
                "dana.lee@lockstep.example",
                "gcm_enabled",
                datetime(2020, 5, 4, 9),
            ]
        ],
        columns=["external_id", "name", "tier", "region", "account_manager", "stage", "since"],
    )
    shown = tenant_list_table(rows, NAMES)
    assert shown.iloc[0].tolist() == [
        "T1",
        "Acme",
        "Business",
        "Europe",
        "Dana Lee",
        "GCM enabled",
        "4 May 2020",
    ]
    overdue = pd.DataFrame(
        [["Z21", "Client", "Eng", "President (named)", date(2020, 6, 28), 2, "at_risk", 0]],
        columns=["id", "title", "workstream", "owner", "due_date", "days_overdue", "status", "percent"],
    )
    assert overdue_items_table(overdue).iloc[0].tolist() == [
        "Z21",
        "Client",
        "President",
        "28 Jun 2020",
        "2 d",
        "At risk",
    ]
    links = pd.DataFrame(
        [
            [
                1,
                "T1",
                "Acme",
                "dana.lee@lockstep.example",
                datetime(2026, 12, 2, 9),
                datetime(2026, 12, 16, 9),
                None,
                None,
                "active",
            ]
        ],
        columns=[
            "id",
            "tenant_external_id",
            "tenant_name",
            "created_by",
            "created_at",
            "expires_at",
            "revoked_at",
            "revoked_by",
            "status",
        ],
    )
    shown = share_links_table(links, NAMES)
    assert "Stops working" in shown.columns and "expires_at" not in shown.columns
    assert shown.iloc[0].tolist() == [
        "#1",
        "Active",
        "Dana Lee",
        "2 Dec 2026 09:00 UTC",
        "16 Dec 2026 09:00 UTC",
        "",
        "",
    ]
    assert _no_codes(shown) == []


def test_customer_steps_say_when_in_words():
    class Step:
        def __init__(self, name, reached, at):
            self.name, self.reached, self.reached_at, self.description = name, reached, at, None

    shown = customer_steps_table(
        [
            Step("Legacy cipher", True, None),
            Step("GCM enabled", True, datetime(2020, 5, 4)),
            Step("GCM enforced", False, None),
        ]
    )
    assert shown["When"].tolist() == ["From the start", "4 May 2020", ""]
    assert shown["Reached"].tolist() == ["Yes", "Yes", "Not yet"] and _no_codes(shown) == []
