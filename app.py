"""Lockstep: the Streamlit entry point. Navigation decides what this visitor may open."""

import streamlit as st

from lockstep.ui.nav import build_navigation

st.set_page_config(page_title="Lockstep", page_icon=":lock:", layout="wide")
build_navigation().run()
