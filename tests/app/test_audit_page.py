"""Audit page (admin only): counts, paging and filters equal SQL; chain status; values shown as text."""

from __future__ import annotations

from datetime import date, datetime

import pytest
from sqlalchemy import text
from streamlit.testing.v1 import AppTest

from lockstep.access import may_open
from lockstep.config import ROOT
from lockstep.db import write_session
from lockstep.models import ROLES
from lockstep.services import audit
from tests.app.conftest import ACTORS

HOSTILE = {"name": "<script>alert(1)</script>", "html": "<img src=x onerror=alert(1)>"}


def sql(engine, query: str, **params):
    with engine.connect() as conn:
        return conn.execute(text(query), params).all()


@pytest.fixture
def busy_log(demo_engine):
    """The demo log plus 120 entries, so there is more than one page."""
    with write_session(demo_engine) as s:
        for i in range(120):
            audit.append(s, f"person{i % 3}@lockstep.example", "test.touch", "thing", i,
                         before={"i": i - 1}, after={"i": i, **HOSTILE})
    return demo_engine


def caption_count(at: AppTest) -> int:
    line = next(c.value for c in at.caption if c.value.endswith("matching entries, newest first."))
    return int(line.split()[0].replace(",", ""))


def test_admin_sees_the_newest_page_and_numbers_equal_sql(busy_log, open_page):
    at = open_page("audit", "admin")
    assert not at.exception, at.exception
    total = sql(busy_log, "SELECT count(*) FROM audit_log")[0][0]
    assert caption_count(at) == total
    assert at.success[0].value.startswith(f"Chain verified ✓ — {total:,} entries")
    newest = [r[0] for r in sql(busy_log, "SELECT id FROM audit_log ORDER BY id DESC LIMIT 50")]
    assert list(at.dataframe[0].value["#"]) == newest
    assert at.number_input(key="audit_page").label == f"Page (of {-(-total // 50)})"


def test_paging_is_done_in_sql_and_matches(busy_log, open_page):
    at = open_page("audit", "admin")
    at.number_input(key="audit_page").set_value(2).run()
    assert not at.exception
    expected = [r[0] for r in sql(busy_log, "SELECT id FROM audit_log ORDER BY id DESC LIMIT 50 OFFSET 50")]
    assert list(at.dataframe[0].value["#"]) == expected


def test_filters_match_sql(busy_log, open_page):
    at = open_page("audit", "admin")
    at.multiselect(key="audit_actions").set_value(["test.touch"]).run()
    at.multiselect(key="audit_actors").set_value(["person1@lockstep.example"]).run()
    assert not at.exception
    expected = sql(
        busy_log,
        "SELECT count(*) FROM audit_log WHERE action = 'test.touch' AND actor = 'person1@lockstep.example'",
    )[0][0]
    assert caption_count(at) == expected == 40
    at.text_input(key="audit_entity_id").input("7").run()
    assert list(at.dataframe[0].value["Which"]) == ["7"]


def test_date_range_is_inclusive_and_matches_sql(busy_log, open_page):
    with busy_log.begin() as conn:
        conn.execute(text("UPDATE audit_log SET at = :t WHERE id <= 5"), {"t": datetime(2020, 5, 1, 23, 59)})
    at = open_page("audit", "admin")
    at.date_input(key="audit_start").set_value(date(2020, 5, 1)).run()
    at.date_input(key="audit_end").set_value(date(2020, 5, 1)).run()
    assert not at.exception
    assert caption_count(at) == 5
    assert sorted(at.dataframe[0].value["#"]) == [1, 2, 3, 4, 5]


def test_no_match_says_so(busy_log, open_page):
    at = open_page("audit", "admin")
    at.text_input(key="audit_entity_id").input("no-such-entity").run()
    assert caption_count(at) == 0
    assert at.info[0].value == "No audit entries match these filters."


def test_a_tampered_log_shows_where_the_chain_breaks(busy_log, open_page):
    with busy_log.begin() as conn:
        conn.execute(text("UPDATE audit_log SET actor = 'mallory' WHERE id = 7"))
    at = open_page("audit", "admin")
    assert not at.exception
    assert not at.success
    assert at.error[0].value.startswith("Chain broken at entry 7: entry 7 was edited")


def test_before_and_after_are_json_text_never_markup(busy_log, open_page):
    at = open_page("audit", "admin")
    frame = at.dataframe[0].value
    newest = frame.iloc[0]
    assert HOSTILE["name"] in newest["After"] and newest["After"].startswith("{")
    # The full entry is shown in code blocks (verbatim text).
    bodies = [c.value for c in at.code]
    assert any(HOSTILE["html"] in b for b in bodies)
    for el in at.markdown:
        assert not el.proto.allow_html
        assert "<img" not in el.value and "<script" not in el.value


@pytest.mark.parametrize("role", [r for r in ROLES if not may_open(r, "audit")])
def test_other_roles_cannot_open_it(sign_in_as, role):
    at = AppTest.from_file(str(ROOT / "pages" / "audit.py"), default_timeout=60)
    sign_in_as(ACTORS[role].email)
    at.run()
    assert not at.exception
    assert not at.dataframe and not at.success
    assert [e.value for e in at.error] == ["This page is not available to you."]


def test_the_head_is_offered_for_keeping_outside(busy_log, open_page):
    at = open_page("audit", "admin")
    last_id, head = sql(busy_log, "SELECT last_id, hash FROM audit_head")[0]
    assert any(c.value == f"{head}  (entry {last_id})" for c in at.code)
    with write_session(busy_log) as s:
        assert audit.verify(s, expected_head=head).ok

