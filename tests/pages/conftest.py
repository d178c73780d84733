"""AppTest fixtures: caches cleared around every test (st.cache_resource survives across AppTest instances)."""

from __future__ import annotations

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from tests.conftest import REPO


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
