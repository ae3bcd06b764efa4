"""User text is shown as text on every page, and every CSV download is safe in a spreadsheet.

Hostile text goes into every place a person can type: tenant names (the demo already has
"<script>alert(1)</script> Security", "<b>Bold</b> Media", "=Equals Labs"), notes, plan
item titles and comments, rollout event notes. Then each page is opened by each role that
may open it, and every element is walked:

- no Markdown element allows HTML;
- elements that render Markdown (markdown, captions, headings, alerts, metric and widget
  labels) never carry a raw tag like "<script" or "<img": such text must be in st.text,
  st.code, a dataframe cell or a selectbox option (all shown verbatim), or escaped;
- plotly figures carry no raw tag either (plotly renders a few tags in labels);
- every download is a CSV whose cells never start with = + - @ tab or CR unless a number.
"""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import datetime

import pytest
import streamlit as st
from sqlalchemy import text

from lockstep.access import PAGES, may_open
from lockstep.db import write_session
from lockstep.models import ROLES
from lockstep.permissions import SYSTEM, Actor
from lockstep.services.notes import add_note
from lockstep.services.plan_items import update_plan_item
from lockstep.services.rollout import record_event

SCRIPT = "<script>alert(1)</script>"
IMG = "<img src=x onerror=alert(document.cookie)>"
FORMULA = '=HYPERLINK("https://evil.example","click")'
RAW_TAG = re.compile(r"(?<!\\)<\s*/?\s*(script|img|b|a|iframe|svg)\b", re.IGNORECASE)
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# Proto fields that Streamlit renders as Markdown, by element type.
MARKDOWN_FIELDS = ("body", "label")
VERBATIM = {"text", "code", "arrow_data_frame", "dataframe", "json", "exception"}


def sql(engine, query: str, **params):
    with engine.connect() as conn:
        return conn.execute(text(query), params).all()


@pytest.fixture
def hostile(demo_engine):
    """Hostile text in every user-text field; returns the tenant that carries most of it."""
    ext = sql(demo_engine, "SELECT external_id FROM tenants WHERE name LIKE :n", n=f"{SCRIPT}%")[0][0]
    # Dana's (the account manager the app fixture signs in as), so every role sees it.
    manager = "dana.lee@lockstep.example"
    with demo_engine.begin() as conn:
        conn.execute(text("UPDATE tenants SET name = :n, account_manager = :m WHERE external_id = :e"),
                     {"n": f"{SCRIPT} {IMG} Security", "m": manager, "e": ext})
        conn.execute(text("UPDATE current_state SET account_manager = :m "
                          "WHERE tenant_id = (SELECT id FROM tenants WHERE external_id = :e)"),
                     {"m": manager, "e": ext})
        conn.execute(text("UPDATE plan_items SET title = :t WHERE id = (SELECT min(id) FROM plan_items)"),
                     {"t": f"{IMG} Harden the <b>web</b> client"})
    item_id, version = sql(demo_engine, "SELECT id, version FROM plan_items ORDER BY id LIMIT 1")[0]
    with write_session(demo_engine) as s:
        update_plan_item(session=s, actor=SYSTEM, item_id=item_id, expected_version=version,
                         comment=f"{SCRIPT} {FORMULA}")
        add_note(session=s, actor=Actor(manager, "account_manager"), tenant_external_id=ext,
                 body=f"{IMG} {FORMULA}")
        track = sql(demo_engine, "SELECT cs.track_code FROM current_state cs JOIN tenants t "
                    "ON t.id = cs.tenant_id WHERE t.external_id = :e ORDER BY 1 LIMIT 1", e=ext)[0][0]
        record_event(session=s, actor=SYSTEM, tenant_external_id=ext, track=track, stage="blocked",
                     occurred_at=datetime(2020, 6, 29, 12), note=f"{SCRIPT} blocked by {IMG}")
    return ext, manager


def walk(node):
    yield node
    for child in getattr(node, "children", {}).values():
        yield from walk(child)


def unsafe_spots(at) -> list[str]:
    """Every place on the rendered page where user text could become markup."""
    problems = []
    for node in [*walk(at.main), *walk(at.sidebar)]:
        proto = getattr(node, "proto", None)
        kind = getattr(node, "type", "")
        if proto is None or kind in VERBATIM:
            continue
        if getattr(proto, "allow_html", False):
            problems.append(f"{kind} allows HTML")
        if kind == "plotly_chart":
            for s in _strings(json.loads(proto.spec)):
                if RAW_TAG.search(s):
                    problems.append(f"plotly text {s[:60]!r}")
            continue
        for name in MARKDOWN_FIELDS:
            if name in proto.DESCRIPTOR.fields_by_name:
                value = getattr(proto, name)
                if isinstance(value, str) and RAW_TAG.search(value):
                    problems.append(f"{kind}.{name} {value[:60]!r}")
    return problems


def _strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


@pytest.fixture
def downloads(monkeypatch):
    """Every CSV offered by st.download_button, captured as the page makes it."""
    seen: list[tuple[str, bytes]] = []
    original = st.download_button

    def recording(label, data, *args, **kwargs):
        # CSV files made on the page; reports (PDF, HTML) are made on click and escape on their own.
        name = kwargs.get("file_name") or ""
        if name.endswith(".csv") and isinstance(data, bytes | str):
            seen.append((name, data if isinstance(data, bytes) else data.encode()))
        return original(label, data, *args, **kwargs)

    monkeypatch.setattr(st, "download_button", recording)
    return seen


def unsafe_cells(data: bytes) -> list[str]:
    bad = []
    for row in csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")):
        for cell in row:
            if cell.startswith(FORMULA_START):
                try:
                    float(cell)
                except ValueError:
                    bad.append(cell)
    return bad


# Pages where the hostile text must appear (somewhere verbatim) once the tenant is picked.
SHOWS_HOSTILE = {"customers", "rollout", "plan", "audit"}


def verbatim_texts(at) -> list[str]:
    """Text shown verbatim: st.text, st.code, dataframe cells, selectbox options."""
    out = [el.value for el in [*at.text, *at.code]]
    for frame in at.dataframe:
        out += [str(v) for v in frame.value.astype(str).to_numpy().ravel()]
    for box in at.selectbox:
        out += [str(o) for o in box.options]
    return out


PAGE_ROLES = [(p, r) for p in PAGES for r in ROLES if may_open(r, p)]


@pytest.mark.parametrize("page, role", PAGE_ROLES)
def test_every_page_shows_hostile_text_as_text(hostile, open_page, downloads, page, role):
    ext, manager = hostile
    at = open_page(page, role)
    assert not at.exception, at.exception
    # Bring the hostile tenant on screen where a page picks one tenant.
    if page == "customers":
        at.text_input(key="customers_search").input("script").run()
    elif page == "rollout":
        at.text_input(key="rollout_search").input("script").run()
        at.selectbox(key="rollout_tenant").set_value(ext).run()
    assert not at.exception, at.exception
    assert unsafe_spots(at) == []
    if page in SHOWS_HOSTILE:
        # The check saw something: the hostile text is on the page, shown verbatim.
        assert any(SCRIPT in v or IMG in v for v in verbatim_texts(at)), "hostile text not on the page"
    if page in ("customers", "e2ee"):
        assert downloads, "the page offers CSV downloads; none were seen"
    for name, data in downloads:
        assert unsafe_cells(data) == [], name


def test_the_customer_csv_carries_the_hostile_note_neutralised(hostile, open_page, downloads):
    at = open_page("customers", "admin")
    at.text_input(key="customers_search").input("script").run()
    assert not at.exception
    name, data = [d for d in downloads if d[0].endswith(".csv")][-1]
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))
    cells = [c for row in rows for c in row]
    assert f"{IMG} {FORMULA}" in cells  # the note starts with "<", so it is kept as typed
    assert unsafe_cells(data) == []


def test_a_formula_tenant_name_is_neutralised_in_downloads(demo_engine, open_page, downloads):
    with demo_engine.begin() as conn:
        ext = conn.execute(text("SELECT external_id FROM tenants WHERE name = '=Equals Labs'")).scalar()
        conn.execute(text("UPDATE tenants SET name = :n WHERE external_id = :e"), {"n": FORMULA, "e": ext})
    at = open_page("customers", "admin")
    at.text_input(key="customers_search").input("hyperlink").run()
    assert not at.exception
    name, data = [d for d in downloads if d[0].endswith(".csv")][-1]
    cells = [c for row in csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")) for c in row]
    assert "'" + FORMULA in cells and FORMULA not in cells


def test_the_check_catches_markup_and_passes_verbatim_text():
    from streamlit.testing.v1 import AppTest

    script = f'''
import plotly.graph_objects as go
import streamlit as st
st.text({SCRIPT!r})
st.code({IMG!r})
st.markdown({SCRIPT!r})
st.caption({IMG!r})
st.error("<b>bold</b>")
st.markdown("fine", unsafe_allow_html=True)
st.plotly_chart(go.Figure(go.Bar(x=["<b>Bold</b> Media"], y=[1])))
'''
    at = AppTest.from_string(script).run()
    problems = unsafe_spots(at)
    assert [p.split(" ")[0] for p in problems] == [
        "markdown.body", "caption.body", "error.body", "markdown", "plotly",
    ], problems
