"""Customers page (placeholder until the dashboard issue lands)."""

import streamlit as st

st.title("Customers")
st.info("This page is being built.")
