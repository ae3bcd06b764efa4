"""Plan page (placeholder until the dashboard issue lands)."""

import streamlit as st

st.title("Plan")
st.info("This page is being built.")
