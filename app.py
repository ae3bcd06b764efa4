"""Lockstep: the Streamlit entry point. Navigation decides what this visitor may open."""

import streamlit as st

from lockstep.ui.data import settings
from lockstep.ui.errors import run_page
from lockstep.ui.nav import build_navigation

st.set_page_config(page_title="Lockstep", page_icon=":lock:", layout="wide")
settings()  # a bad LOCKSTEP_* variable: every page shows which and why, instead of a traceback
run_page(build_navigation())
