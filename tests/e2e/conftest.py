"""Browser fixtures: Debian chromium driven by Playwright (CI installs chromium with apt; no browser download)."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from fraudcore.simulate import generate_to_file
from tests.conftest import REPO, running_app

CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = REPO / "tests" / "e2e" / "screenshots"


@pytest.fixture
def app_url(isolated_paths: Path):
    """The app on a free loopback port, with a small demo dataset already generated in its data folder."""
    generate_to_file(isolated_paths / "data" / "demo_transactions.parquet", rows=20_000)
    with running_app() as (base, _):
        yield base


@pytest.fixture
def page():
    """A fresh headless chromium page; screenshots go to tests/e2e/screenshots/ (git-ignored)."""
    if not Path(CHROMIUM).exists():  # .ci/run installs it; a bare Python machine may not have it
        pytest.skip(f"browser journey needs Debian chromium at {CHROMIUM}: apt-get install -y chromium")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                     args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                                           "--disable-component-update", "--disable-sync", "--no-first-run"])
        tab = browser.new_page(viewport={"width": 1400, "height": 2400})  # Streamlit scrolls inside: a tall window
        yield tab
        browser.close()
