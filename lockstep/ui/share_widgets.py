"""Share links on the Customers page: make one, see who made which, revoke."""

from __future__ import annotations

from urllib.parse import quote

import streamlit as st

from lockstep.config import get_settings
from lockstep.db import write_session
from lockstep.errors import LockstepError
from lockstep.permissions import can
from lockstep.queries.names import display_names
from lockstep.services.share_links import MAX_DAYS, create_share_link, list_share_links, revoke_share_link
from lockstep.tables import share_links_table
from lockstep.ui.data import cached_query, clear_after_write, engine, run_query
from lockstep.ui.session import current_actor

_NEW_LINK = "share_new_link"


def public_url() -> str:
    """Where customers reach this app (settings.public_url, from LOCKSTEP_PUBLIC_URL)."""
    return get_settings().public_url


def share_url(token: str) -> str:
    """The address a customer opens for `token`."""
    return f"{public_url()}/share?token={quote(token)}"


def share_link_panel(tenant_external_id: str) -> None:
    """Create, list and revoke share links for one tenant (nothing for roles that may not)."""
    actor = current_actor()
    if not can(actor, "share.create"):
        return
    st.markdown("#### Share with the customer")
    st.caption("A read-only link to this status page, for this tenant only. It expires; you can revoke it.")
    new = st.session_state.get(_NEW_LINK)
    if new and new[0] == tenant_external_id:
        st.success("Link created. Copy it now: it is shown only once.")
        st.code(new[1], language=None)
    key = f"share_{tenant_external_id}"
    days_col, button_col = st.columns([1, 2], vertical_alignment="bottom")
    days = days_col.number_input("Valid for (days)", min_value=1, max_value=MAX_DAYS,
                                 value=get_settings().share_link_days, step=1, key=f"{key}_days")
    if button_col.button("Create share link", key=f"{key}_create", icon=":material/link:"):
        try:
            with write_session(engine(), actor=actor) as session:
                _, token = create_share_link(session=session, actor=actor,
                                             tenant_external_id=tenant_external_id, days=int(days))
        except LockstepError as exc:
            st.error(str(exc))
        else:
            st.session_state[_NEW_LINK] = (tenant_external_id, share_url(token))
            clear_after_write()
            st.rerun()

    # Uncached: the list must show a revocation the moment it happens.
    links = run_query(list_share_links, actor=actor, tenant_external_id=tenant_external_id)
    if links.empty:
        st.caption("No share links for this tenant yet.")
        return
    st.dataframe(
        share_links_table(links, cached_query(display_names)), hide_index=True, width="stretch",
        column_config={"Link": {"width": 50}, "State": {"width": 70}, "Made by": {"width": 120},
                       "Made": {"width": 150}, "Stops working": {"width": 150}, "Revoked": {"width": 150},
                       "Revoked by": {"width": 120}},
    )
    st.caption("Times are real (UTC), whatever date the rollout status is as of.")
    active = links.loc[links["status"] == "active", "id"].tolist()
    if not active:
        return
    pick_col, revoke_col = st.columns([1, 2], vertical_alignment="bottom")
    link_id = pick_col.selectbox("Link", active, format_func=lambda i: f"#{i}", key=f"{key}_pick")
    if revoke_col.button("Revoke", key=f"{key}_revoke", icon=":material/link_off:"):
        try:
            with write_session(engine(), actor=actor) as session:
                revoke_share_link(session=session, actor=actor, link_id=int(link_id))
        except LockstepError as exc:
            st.error(str(exc))
        else:
            st.session_state.pop(_NEW_LINK, None)
            clear_after_write()
            st.rerun()
