"""Audit: every write, who and when, before and after; and whether the hash chain is whole."""

from __future__ import annotations

import json

import streamlit as st

from lockstep.queries import audit as q
from lockstep.tables import audit_entries_table
from lockstep.ui.data import cached_query, run_query
from lockstep.ui.session import current_actor

PAGE_SIZE = 50

actor = current_actor()
st.title("Audit log")

# --- chain health ---------------------------------------------------------------------------
check_now = st.button("Verify the chain now", key="audit_verify", icon=":material/verified:")
result = run_query(q.chain_status, actor=actor) if check_now else cached_query(q.chain_status, actor=actor)
if result.ok:
    st.success(f"Chain verified ✓ — {result.checked:,} entries, each one follows the one before.")
else:
    st.error(f"Chain broken at entry {result.bad_id}: {result.problem}")
with st.expander("Keep the head outside the database"):
    st.text(
        "Copy this hash somewhere the database's owners cannot change (a ticket, a signed e-mail).\n"
        "`python -m lockstep audit verify --head HASH` then also catches entries cut off the end."
    )
    head = cached_query(q.audit_head, actor=actor)
    st.code(f"{head[1]}  (entry {head[0]})" if head else "the log is empty", language=None)

# --- filters ----------------------------------------------------------------------------------
options = cached_query(q.audit_filter_options, actor=actor)
c1, c2, c3 = st.columns(3)
actors = c1.multiselect("Actor", options["actors"], key="audit_actors")
actions = c2.multiselect("Action", options["actions"], key="audit_actions")
entity_types = c3.multiselect("Entity type", options["entity_types"], key="audit_entity_types")
c4, c5, c6 = st.columns(3)
entity_id = c4.text_input("Entity id (exact)", max_chars=128, key="audit_entity_id")
start = c5.date_input("From", value=None, key="audit_start")
end = c6.date_input("To (inclusive)", value=None, key="audit_end")
filters = dict(
    actors=tuple(actors),
    actions=tuple(actions),
    entity_types=tuple(entity_types),
    entity_id=entity_id,
    start=start,
    end=end,
)

total = cached_query(q.audit_entry_count, actor=actor, **filters)
pages = max(1, -(-total // PAGE_SIZE))
page = st.number_input(f"Page (of {pages:,})", min_value=1, max_value=pages, value=1, step=1,
                       key="audit_page")
entries = cached_query(
    q.audit_entries, actor=actor, limit=PAGE_SIZE, offset=(int(page) - 1) * PAGE_SIZE, **filters
)
st.caption(f"{total:,} matching entries, newest first.")
if entries.empty:
    st.info("No audit entries match these filters.")
    st.stop()

st.dataframe(
    audit_entries_table(entries),
    hide_index=True,
    width="stretch",
    # Widths that fit beside the sidebar at 1280 pixels; the entry in full is below.
    column_config={"#": {"width": 50}, "When (UTC)": {"width": 150}, "Who": {"width": 150},
                   "Action": {"width": 110}, "What": {"width": 80}, "Which": {"width": 90},
                   "Before": {"width": 90}, "After": {"width": 90}},
)

# --- one entry in full ------------------------------------------------------------------------
picked = st.selectbox("Show one entry in full", entries["id"].tolist(), key="audit_entry")
row = entries.set_index("id").loc[picked]
st.text(f"#{picked} · {row['at']:%Y-%m-%d %H:%M:%S} UTC · {row['actor']} · {row['action']} · "
        f"{row['entity_type']} {row['entity_id']}")
before_col, after_col = st.columns(2)
for col, label in ((before_col, "before"), (after_col, "after")):
    col.caption(label)
    # st.code shows text verbatim: whatever a value holds, it is never rendered as markup.
    col.code(json.dumps(json.loads(row[label]), indent=2, ensure_ascii=False) if row[label] else "—",
             language="json", wrap_lines=True)
