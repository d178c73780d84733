"""AppTest fixtures: caches cleared around every test (st.cache_resource survives across AppTest instances)."""

from __future__ import annotations

import pytest
import streamlit as st
import streamlit.testing.v1.app_test as app_test_module
from streamlit.runtime.pages_manager import PagesManager
from streamlit.testing.v1 import AppTest

from tests.conftest import REPO


class RouterPagesManager(PagesManager):
    """AppTest resets Streamlit's pages/ folder detection before every run, so a rerun of app.py would run the page
    alone (legacy pages/ mode, no sidebar, no st.page_link targets); the app's lifespan declares the st.navigation
    router, so do the same here."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        PagesManager.uses_pages_directory = False


@pytest.fixture(autouse=True)
def router(monkeypatch):
    monkeypatch.setattr(app_test_module, "PagesManager", RouterPagesManager)


@pytest.fixture(autouse=True)
def clear_streamlit_caches():
    st.cache_data.clear()
    st.cache_resource.clear()
    yield
    st.cache_data.clear()
    st.cache_resource.clear()


def open_page(path, analyst: str | None = "ana", timeout: float = 90) -> AppTest:
    """A page's AppTest with an analyst name in the session (as the sidebar sets it), unless ``analyst`` is None."""
    at = AppTest.from_file(path, default_timeout=timeout)
    if analyst:
        at.session_state["analyst"] = analyst
    return at


@pytest.fixture
def app() -> AppTest:
    """The whole app (router + default page), run once."""
    return AppTest.from_file(str(REPO / "app.py"), default_timeout=60).run()
