"""Serve Lockstep: `streamlit run serve.py` runs app.py with the session-cookie routes beside it.

st.App is Streamlit's own way to add HTTP routes to an app (Starlette routes, served by the
same server); lockstep/ui/web.py holds the two routes and says why they are needed.
"""

import streamlit as st

from lockstep.ui.startup import preload_pages
from lockstep.ui.web import session_routes

# Import what the pages need now, not on the first visit after a start (lockstep/ui/startup.py).
preload_pages()
app = st.App("app.py", routes=session_routes())
