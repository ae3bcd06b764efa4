"""A customer's view through a share link: one tenant's status, read-only, nothing else.

Navigation serves this page alone and hidden (no sidebar, no menu) whenever the URL has a
`token`. Unknown, altered, expired and revoked tokens all get the same page.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from lockstep.services.share_links import shared_tenant_status
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
    f"Account {status.external_id} · {status.tier_name} · region {status.region} · "
    f"{status.seats:,} seats · status as of {status.as_of:%d %B %Y}"
)

for tr in status.tracks:
    st.subheader(md(tr.track_name))
    now_col, next_col = st.columns([1, 2])
    now_col.metric("Now", tr.stage_name)
    next_col.text(tr.next_text)
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "stage": s.name,
                    "reached": "yes" if s.reached else "not yet",
                    "when": s.reached_at.strftime("%Y-%m-%d") if s.reached_at else "",
                    "what it means": s.description,
                }
                for s in tr.steps
            ],
            columns=["stage", "reached", "when", "what it means"],
        ),
        hide_index=True,
        width="stretch",
    )

st.subheader("Can this account use end-to-end encryption?")
st.text(status.e2ee_text)
for sentence in status.blockers:
    st.text(f"• {sentence}")

if status.notes:
    st.subheader("Notes from your account manager")
    st.dataframe(
        pd.DataFrame([{"date": n.created_at.strftime("%Y-%m-%d"), "note": n.body} for n in status.notes]),
        hide_index=True,
        width="stretch",
    )

st.divider()
st.text(f"Questions? Your account manager: {status.account_manager}")
st.caption("This page is read-only and shows this account only.")
