"""Fraud Workbench: the st.App (ASGI) that serves the pages and /api/*; its lifespan owns long-lived resources."""

from contextlib import asynccontextmanager

import streamlit as st
from streamlit.runtime.pages_manager import PagesManager

from fraudcore.api import api_routes
from fraudcore.config import get_paths


@asynccontextmanager
async def lifespan(_app):
    """Startup: make sure the workbench's folders exist. Later: open the store and own the poller thread."""
    paths = get_paths().ensure()
    # Pages live in pages/ and are listed by st.navigation below. Streamlit treats a pages/ folder beside the main
    # script as a legacy multipage app until st.navigation first runs, so a session that opens /data directly on a
    # fresh server would run that page alone (no router, no shared frame). Declare the v2 router from the start.
    PagesManager.uses_pages_directory = False
    yield {"paths": paths}


app = st.App("app.py", routes=api_routes(), lifespan=lifespan)

if __name__ == "__main__":
    st.set_page_config(page_title="Fraud Workbench", page_icon=":material/shield:", layout="wide")
    navigation = st.navigation(
        {"Workbench": [
            st.Page("pages/home.py", title="Home", icon=":material/home:", default=True),
            st.Page("pages/data.py", title="Data & EDA", icon=":material/table_chart:"),
        ]}
    )
    navigation.run()
