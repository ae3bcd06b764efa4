"""The only layer that touches streamlit below the views: session, caching, navigation."""
