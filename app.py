"""Lockstep: the Streamlit entry point. Navigation decides what this visitor may open."""

import streamlit as st

from lockstep.ui.errors import run_page
from lockstep.ui.nav import build_navigation

st.set_page_config(page_title="Lockstep", page_icon=":lock:", layout="wide")
run_page(build_navigation())
