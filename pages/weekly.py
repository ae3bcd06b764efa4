"""Weekly page (placeholder until the dashboard issue lands)."""

import streamlit as st

st.title("Weekly")
st.info("This page is being built.")
