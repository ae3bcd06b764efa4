"""Customers: one of my tenants as I would show it to the customer, with notes and a CSV."""

from __future__ import annotations

import streamlit as st

from lockstep.clock import utcnow
from lockstep.db import write_session
from lockstep.errors import LockstepError, NotFoundError
from lockstep.exports import dataframe_to_csv
from lockstep.labels import clock_note, fmt_date, fmt_datetime, fmt_seats, region_label
from lockstep.permissions import can
from lockstep.queries import customers as q
from lockstep.queries.names import display_names
from lockstep.queries.rollout import filter_options
from lockstep.services.notes import MAX_NOTE_CHARS, add_note
from lockstep.tables import STEP_WIDTHS, customer_steps_table
from lockstep.ui.data import cached_query, clear_after_write, engine
from lockstep.ui.programs import current_program
from lockstep.ui.reports import customer_report_button
from lockstep.ui.session import current_actor
from lockstep.ui.share_widgets import share_link_panel
from lockstep.ui.uploads import import_form

ALL = "All account managers"

actor = current_actor()
st.title("Customers")
# A customer's list of tenants often arrives as the account manager's spreadsheet.
import_form(actor)

manager = None
if actor.is_manager:
    st.caption("Your tenants.")
else:
    managers = cached_query(filter_options, actor=actor)["managers"]
    names_of = cached_query(display_names)
    pick = st.selectbox("Account manager", [ALL, *managers], key="customers_manager",
                        format_func=lambda m: m if m == ALL else names_of.person(m))
    manager = None if pick == ALL else pick

search = st.text_input("Find a tenant by name or id", key="customers_search")
choices = cached_query(q.tenant_choices, actor=actor, manager=manager, search=search)
if choices.empty:
    st.info("No tenant matches." if search else "No tenants to show.")
    st.stop()
names = dict(zip(choices["external_id"], choices["name"], strict=True))
if len(choices) >= q.CHOICES_LIMIT:
    st.caption(f"Showing the first {q.CHOICES_LIMIT} by name; type to narrow the list.")
picked = st.selectbox(
    "Tenant", list(names), format_func=lambda ext: f"{names[ext]} ({ext})", key="customers_tenant"
)

try:
    status = cached_query(
        q.customer_status, actor=actor, tenant_external_id=picked, program=current_program()
    )
except NotFoundError as exc:
    st.error(str(exc))
    st.stop()

if flash := st.session_state.pop("customers_flash", None):
    st.success(flash)

# --- the view to show the customer: this tenant only, nothing internal --------------------
st.subheader("Status")
st.text(status.name)
st.text(
    f"Account {status.external_id} · {status.tier_name} · {region_label(status.region)} · "
    f"{fmt_seats(status.seats)} · rollout status as of {fmt_date(status.as_of)}"
)
if (clock := clock_note(status.as_of, utcnow().date())) is not None:
    st.caption(clock)

for tr in status.tracks:
    st.markdown(f"#### {tr.track_name}")
    c1, c2 = st.columns([1, 2])
    c1.metric("Now", tr.stage_name)
    c2.text(tr.next_text)
    st.dataframe(customer_steps_table(tr.steps), hide_index=True, width="stretch",
                 key=f"customers_steps_{tr.track}",
                 column_config=STEP_WIDTHS)

st.markdown("#### E2EE eligibility")
st.text(status.e2ee_text)
for sentence in status.blockers:
    st.text(f"• {sentence}")

st.markdown("#### Notes")
st.caption("Notes are part of the customer's view: share links, the CSV and the PDF show them.")
if not status.notes:
    st.caption("No notes yet.")
else:
    # Whole notes, wrapped, as the customer reads them: a table cell would cut long ones off.
    for note in status.notes:
        with st.container(border=True):
            st.caption(f"Written {fmt_datetime(note.created_at)}")
            st.text(note.body)

st.download_button(
    "Download this status (CSV)",
    dataframe_to_csv(q.status_rows(status)),
    file_name=f"status-{status.external_id}.csv",
    mime="text/csv",
    key="customers_csv",
    on_click="ignore",  # a download needs no rerun (and a rerun would drop pending downloads)
)
customer_report_button(actor, status.external_id, current_program())

# --- notes ----------------------------------------------------------------------------------
if can(actor, "note.add"):
    with st.form("add_note", clear_on_submit=True):
        body = st.text_area("Add a note (the customer will see it)", max_chars=MAX_NOTE_CHARS)
        submitted = st.form_submit_button("Save note")
    if submitted:
        try:
            with write_session(engine(), actor=actor) as session:
                add_note(session=session, actor=actor, tenant_external_id=status.external_id, body=body)
        except LockstepError as exc:
            st.error(str(exc))
        else:
            clear_after_write()
            st.session_state["customers_flash"] = "Note saved."
            st.rerun()

share_link_panel(status.external_id)
