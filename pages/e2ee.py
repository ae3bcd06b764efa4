"""E2ee page (placeholder until the dashboard issue lands)."""

import streamlit as st

st.title("E2ee")
st.info("This page is being built.")
