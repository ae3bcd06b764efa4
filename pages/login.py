"""Sign in: e-mail and password, or single sign-on when it is configured."""

from __future__ import annotations

import streamlit as st

from lockstep.ui.session import ACTOR, REFUSED, SIGNING_IN, home_page, sign_in, sso_configured

if (actor := st.session_state.get(ACTOR)) is not None:
    st.switch_page(home_page(actor))

_, middle, _ = st.columns([1, 1.2, 1])
with middle:
    st.title(":material/lock: Lockstep")
    st.caption("Security migration dashboard. Sign in to continue.")

    if refused := st.session_state.get(REFUSED):
        st.error(refused)
    if st.session_state.get(SIGNING_IN):
        # The browser is on its way to the session route and back (a moment).
        st.info("Signing you in…", icon=":material/login:")
        st.stop()

    if sso_configured():
        if st.button("Sign in with single sign-on", type="primary", width="stretch", key="login_sso"):
            st.login()
        st.caption("Or with a Lockstep password:")

    with st.form("login", border=True):
        email = st.text_input("E-mail", max_chars=254, autocomplete="username", key="login_email")
        password = st.text_input("Password", type="password", max_chars=1024,
                                 autocomplete="current-password", key="login_password")
        submitted = st.form_submit_button("Sign in", type="primary", width="stretch")

    if submitted:
        error = sign_in(email, password) if email and password else "Enter your e-mail and password."
        if error:
            st.error(error)
        else:
            # No st.rerun(): it would drop the queued redirect to the session route.
            st.info("Signing you in…", icon=":material/login:")
