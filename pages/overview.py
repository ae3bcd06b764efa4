"""Overview page (placeholder until the dashboard issue lands)."""

import streamlit as st

st.title("Overview")
st.info("This page is being built.")
