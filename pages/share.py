"""A customer's view through a share link: one tenant's status, read-only, nothing else.

Navigation serves this page alone and hidden (no sidebar, no menu) whenever the URL has a
`token`. Unknown, altered, expired and revoked tokens all get the same page.
"""

from __future__ import annotations

import streamlit as st

from lockstep.labels import contact_label, fmt_date, fmt_seats, region_label
from lockstep.services.share_links import shared_tenant_status
from lockstep.tables import STEP_WIDTHS, customer_steps_table
from lockstep.ui.data import run_query
from lockstep.ui.safe import md

# Uncached on purpose: a revoked link must stop working on the next load, not after a TTL.
status = run_query(shared_tenant_status, token=st.query_params.get("token"))

if status is None:
    st.title("This link is not valid")
    st.text("It may have expired or been revoked. Ask your account manager for a new link.")
    st.stop()

st.caption("Security migration status")
st.title(md(status.name))
st.text(
    f"Account {status.external_id} · {status.tier_name} · {region_label(status.region)} · "
    f"{fmt_seats(status.seats)} · rollout status as of {fmt_date(status.as_of)}"
)

for tr in status.tracks:
    st.subheader(md(tr.track_name))
    now_col, next_col = st.columns([1, 2])
    now_col.metric("Now", tr.stage_name)
    next_col.text(tr.next_text)
    st.dataframe(customer_steps_table(tr.steps), hide_index=True, width="stretch",
                 column_config=STEP_WIDTHS)

st.subheader("Can this account use end-to-end encryption?")
st.text(status.e2ee_text)
for sentence in status.blockers:
    st.text(f"• {sentence}")

if status.notes:
    st.subheader("Notes from your account manager")
    for note in status.notes:
        with st.container(border=True):
            st.caption(f"Written {fmt_date(note.created_at)}")
            st.text(note.body)

st.divider()
st.text("Questions? Your account manager: "
        + contact_label(status.account_manager, status.account_manager_name))
st.caption("This page is read-only and shows this account only.")
