"""Fraud Workbench: the st.App (ASGI) that serves the pages and /api/*; its lifespan owns long-lived resources."""

import os
import socket
import threading
from contextlib import asynccontextmanager

import streamlit as st
from streamlit.runtime.pages_manager import PagesManager

from fraudcore import recent_kernel, runtime
from fraudcore.api import api_routes
from fraudcore.config import get_paths


def configured_api_key() -> str | None:
    """The /api/* key: FRAUDCORE_API_KEY, else ``api_key`` in .streamlit/secrets.toml; None leaves the API open."""
    key = os.environ.get(runtime.ENV_API_KEY, "").strip()
    if key:
        return key
    try:
        return str(st.secrets.get("api_key", "")).strip() or None
    except (FileNotFoundError, KeyError, ValueError):  # no secrets file: no key
        return None


def _accepted_sockets_without_nagle() -> None:
    """Streamlit binds its listening socket itself with proto 0, and asyncio sets TCP_NODELAY only on sockets whose
    proto is IPPROTO_TCP, so every response on a kept-alive connection waited ~40 ms (Nagle + delayed ACK): measured
    /api/health p50 44 ms kept-alive. Uvicorn imports this module before it accepts a connection, so widening
    asyncio's check here covers every accepted TCP socket. Guarded: without the private hook the app runs as before.
    With uvloop installed (requirements.txt) uvicorn runs on it instead, and uvloop sets TCP_NODELAY itself."""
    import asyncio.base_events as base_events

    original = getattr(base_events, "_set_nodelay", None)
    if original is None or getattr(original, "fraudcore_nodelay", False):
        return

    def set_nodelay(sock: socket.socket) -> None:
        if sock.family in {socket.AF_INET, socket.AF_INET6} and sock.type == socket.SOCK_STREAM:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    set_nodelay.fraudcore_nodelay = True
    base_events._set_nodelay = set_nodelay


_accepted_sockets_without_nagle()


@asynccontextmanager
async def lifespan(_app):
    """Startup: the workbench (store, scorers, poller, embedded feed) for this process; shutdown closes it."""
    workbench = runtime.start(get_paths(), api_key=configured_api_key())
    # The live path's numba kernel: loaded from numba's cache (or compiled, the first time on a machine: seconds)
    # now, in the background, rather than on the first page from the feed or the first POST /api/score.
    threading.Thread(target=recent_kernel.warm_up, name="warm-up", daemon=True).start()
    # Pages live in pages/ and are listed by st.navigation below. Streamlit treats a pages/ folder beside the main
    # script as a legacy multipage app until st.navigation first runs, so a session that opens /data directly on a
    # fresh server would run that page alone (no router, no shared frame). Declare the v2 router from the start.
    PagesManager.uses_pages_directory = False
    try:
        yield {"workbench": workbench}
    finally:
        runtime.shutdown()


app = st.App("app.py", routes=api_routes(), lifespan=lifespan)

PAGES = {
    "Build": [
        ("pages/home.py", "Home", ":material/home:"),
        ("pages/data.py", "Data & EDA", ":material/table_chart:"),
        ("pages/train.py", "Train", ":material/model_training:"),
        ("pages/compare.py", "Compare & thresholds", ":material/tune:"),
        ("pages/score.py", "Score", ":material/bolt:"),
    ],
    "Operate": [
        ("pages/live.py", "Live", ":material/sensors:"),
        ("pages/review.py", "Review queue", ":material/assignment:"),
        ("pages/monitor.py", "Monitor", ":material/monitoring:"),
    ],
}

if __name__ == "__main__":
    st.set_page_config(page_title="Fraud Workbench", page_icon=":material/shield:", layout="wide")
    sections = {
        section: [st.Page(file, title=title, icon=icon, default=file == "pages/home.py") for file, title, icon in pages]
        for section, pages in PAGES.items()
    }
    navigation = st.navigation(sections)
    from pages.sidebar import render_sidebar

    render_sidebar()
    navigation.run()
