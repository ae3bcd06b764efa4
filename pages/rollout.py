"""Rollout page (placeholder until the dashboard issue lands)."""

import streamlit as st

st.title("Rollout")
st.info("This page is being built.")
