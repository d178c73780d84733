"""Fraud Workbench: the st.App (ASGI) that serves the pages and /api/*; its lifespan owns long-lived resources."""

from contextlib import asynccontextmanager

import streamlit as st

from fraudcore.api import api_routes
from fraudcore.config import get_paths


@asynccontextmanager
async def lifespan(_app):
    """Startup: make sure the workbench's folders exist. Later: open the store and own the poller thread."""
    paths = get_paths().ensure()
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
