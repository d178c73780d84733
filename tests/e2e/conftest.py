"""Browser fixtures: Debian chromium driven by Playwright (CI installs chromium with apt; no browser download)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from playwright.sync_api import Page, sync_playwright

from fraudcore.simulate import generate_to_file
from tests.conftest import REPO, running_app

CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = REPO / "tests" / "e2e" / "screenshots"
VIEWPORT = {"width": 1400, "height": 2400}  # Streamlit scrolls inside its main block: a tall window shows the page
MAX_SHOT_HEIGHT = 3200  # a long page (a model card) is cut there: readable in the README
RUN_TIMEOUT_MS = 90_000  # one script run (a page with charts on a busy 2-core machine)


@pytest.fixture
def app_url(isolated_paths: Path):
    """The app on a free loopback port, with a small demo dataset already generated in its data folder."""
    generate_to_file(isolated_paths / "data" / "demo_transactions.parquet", rows=20_000)
    with running_app() as (base, _):
        yield base


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the test item, so the page fixture knows whether the test failed."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture
def page(request):
    """A fresh headless chromium page; screenshots go to tests/e2e/screenshots/ (git-ignored), and a failed test
    leaves what the browser showed as failed-<test>.png there."""
    if not Path(CHROMIUM).exists():  # .ci/run installs it; a bare Python machine may not have it
        pytest.skip(f"browser journey needs Debian chromium at {CHROMIUM}: apt-get install -y chromium")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                     args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                                           "--disable-component-update", "--disable-sync", "--no-first-run"])
        tab = browser.new_page(viewport=VIEWPORT)
        yield tab
        report = getattr(request.node, "report_call", None)
        if report is not None and report.failed:
            tab.screenshot(path=str(SCREENSHOTS / f"failed-{request.node.name}.png"), full_page=True)
        browser.close()


def settle(page: Page, timeout_ms: int = RUN_TIMEOUT_MS, quiet_ms: int = 500) -> None:
    """Wait until no script run is in progress: Streamlit's status widget stays hidden for ``quiet_ms`` (a run that
    follows another, or a fragment's, shows it again). Call it after waiting for what the action shows, since a run
    that has not started yet has no status widget either."""
    status = page.get_by_test_id("stStatusWidget")
    deadline = time.monotonic() + timeout_ms / 1000
    while True:
        status.wait_for(state="hidden", timeout=max(1, int((deadline - time.monotonic()) * 1000)))
        page.wait_for_timeout(quiet_ms)
        if not status.is_visible():
            return


def go_to(page: Page, title: str, heading: str | None = None) -> None:
    """Open a page through the sidebar navigation (the same session, as an analyst moves) and wait for its title."""
    page.get_by_test_id("stSidebarNav").get_by_role("link", name=title, exact=True).click()
    page.get_by_role("heading", name=heading or title, exact=True).wait_for(timeout=RUN_TIMEOUT_MS)
    settle(page)


def snap(page: Page, name: str) -> Path:
    """A screenshot of the whole page into tests/e2e/screenshots/<name>.png; the window grows for a long page."""
    page.mouse.move(VIEWPORT["width"] - 5, VIEWPORT["height"] // 2)  # no hover toolbar on a chart or the sidebar
    settle(page)
    height = page.evaluate("() => document.querySelector('[data-testid=stMain]').scrollHeight")
    tall = min(max(int(height), VIEWPORT["height"]), MAX_SHOT_HEIGHT)
    if tall > VIEWPORT["height"]:
        page.set_viewport_size({"width": VIEWPORT["width"], "height": tall})
        page.wait_for_timeout(500)  # charts lay themselves out again for the new window
        settle(page)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    if tall > VIEWPORT["height"]:
        page.set_viewport_size(VIEWPORT)
    return path
