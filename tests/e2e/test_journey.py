"""The browser journey so far: open the workbench, move between pages, open a page by its URL on a fresh server."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import SCREENSHOTS

pytestmark = pytest.mark.e2e


def test_home_then_data_page_through_the_navigation(app_url, page):
    page.goto(app_url)
    page.get_by_role("heading", name="Fraud Workbench").wait_for(timeout=30_000)
    page.screenshot(path=str(SCREENSHOTS / "home.png"), full_page=True)
    page.get_by_role("link", name="Data & EDA").click()
    page.get_by_role("heading", name="Column roles").wait_for(timeout=30_000)
    assert page.get_by_text("20,000").first.is_visible()  # rows of the demo dataset
    page.locator(".vega-embed").first.wait_for(timeout=60_000)  # the EDA charts were drawn
    page.get_by_test_id("stStatusWidget").wait_for(state="hidden", timeout=60_000)  # the script run finished
    page.screenshot(path=str(SCREENSHOTS / "data.png"), full_page=True)


def test_a_page_url_opened_first_on_a_fresh_server_gets_the_workbench_frame(app_url, page):
    page.goto(app_url + "/data")
    page.get_by_role("heading", name="Data & EDA").wait_for(timeout=30_000)
    nav = page.get_by_test_id("stSidebarNav").inner_text()
    assert "Home" in nav and "Data & EDA" in nav
    assert "app" not in nav.split()  # not Streamlit's legacy pages/ listing
