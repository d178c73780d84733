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


@pytest.fixture
def app() -> AppTest:
    """The whole app (router + default page), run once."""
    return AppTest.from_file(str(REPO / "app.py"), default_timeout=60).run()
