"""The browser journey: an analyst walks data → train → compare → score a batch → live feed → review a case →
monitor in one session of the real app, as a user would, and a page URL opened first on a fresh server."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import RUN_TIMEOUT_MS, go_to, settle, snap

pytestmark = pytest.mark.e2e

ANALYST = "Ana Ortiz"
MODEL_ID = "e2e-xgb"
BATCH_ROWS = 300  # plus one row with a broken amount
LIVE_EVENTS = 400
TRAIN_TIMEOUT_MS = 180_000
LIVE_SCORES = re.compile(r"live scores: ([\d,]+) high, ([\d,]+) medium, ([\d,]+) low")


def batch_file(demo: Path, folder: Path) -> Path:
    """The demo data's last rows as a CSV without the label (what a team would send to be scored), one of them with
    an amount that is not a number."""
    rows = pd.read_parquet(demo).tail(BATCH_ROWS + 1).drop(columns=["is_fraud", "fraud_scenario"])
    rows["amount"] = rows["amount"].astype(object)
    rows.iloc[7, rows.columns.get_loc("amount")] = "twelve"
    path = folder / "to_score.csv"
    rows.to_csv(path, index=False)
    return path


def number(text: str) -> int:
    return int(text.replace(",", ""))


def metric(page: Page, label: str) -> str:
    """The value shown by the metric with this label (its delta, if any, is left out)."""
    box = page.get_by_test_id("stMetric").filter(has=page.get_by_test_id("stMetricLabel").filter(has_text=label))
    return box.get_by_test_id("stMetricValue").inner_text().strip()


def grid_cell(grid, text: str):
    """A cell of a Streamlit dataframe: the grid paints a canvas and mirrors its cells in a hidden table."""
    return grid.locator("td", has_text=text).first


def walk_data(page: Page) -> None:
    go_to(page, "Data & EDA")
    page.get_by_role("heading", name="Column roles", exact=True).wait_for(timeout=RUN_TIMEOUT_MS)
    expect(page.get_by_test_id("stMetric").filter(has_text="Rows")).to_contain_text("20,000")
    page.locator(".vega-embed").first.wait_for(timeout=RUN_TIMEOUT_MS)  # the EDA charts were drawn
    snap(page, "data")


def walk_train(page: Page) -> None:
    go_to(page, "Train")
    budget = page.get_by_role("spinbutton", name="Search budget (minutes)")
    budget.fill("0")
    budget.press("Enter")
    model_id = page.get_by_role("textbox", name="Model id")
    model_id.fill(MODEL_ID)
    model_id.press("Enter")
    settle(page)
    page.get_by_role("button", name="Train", exact=True).click()
    progress = page.get_by_test_id("stProgress").filter(has_text=f"Training {MODEL_ID}")
    progress.wait_for(timeout=RUN_TIMEOUT_MS)  # trains in the background; the bar polls the job
    page.get_by_text(re.compile(rf"Trained {MODEL_ID} in \d+ s")).wait_for(timeout=TRAIN_TIMEOUT_MS)
    expect(progress).to_have_count(0)
    page.get_by_role("heading", name="Results", exact=True).wait_for(timeout=RUN_TIMEOUT_MS)
    assert 0 < float(metric(page, "Average precision")) <= 1
    card = page.get_by_test_id("stExpander").filter(has_text=f"Model card: {MODEL_ID}")
    expect(card).to_contain_text(f"by {ANALYST}")  # the sidebar's analyst is recorded in the card
    snap(page, "train")


def walk_compare(page: Page) -> None:
    go_to(page, "Compare & thresholds")
    page.get_by_role("heading", name="Thresholds", exact=True).wait_for(timeout=RUN_TIMEOUT_MS)
    expect(page.get_by_test_id("stMultiSelect").filter(has_text="Models")).to_contain_text(MODEL_ID)
    page.get_by_text("On the test window the models share").wait_for()
    expect(page.locator(".vega-embed [aria-label*='Precision']").first).to_be_attached()  # the PR curve
    page.get_by_role("combobox", name="Model to tune").click()
    page.get_by_role("option", name=MODEL_ID, exact=True).click()
    settle(page)

    page.get_by_role("button", name="Suggest cuts from the objectives").click()
    page.get_by_text("Cuts set from the objectives on the validation window").wait_for(timeout=RUN_TIMEOUT_MS)
    settle(page)
    values = page.get_by_test_id("stSliderThumbValue")
    review_cut = float(values.first.inner_text())
    lowered = f"{max(review_cut - 0.003, 0.0):.4f}"
    thumb = page.get_by_role("slider").first  # the review (medium) cut
    thumb.focus()
    for _ in range(30):  # 30 steps of 0.0001 down: more alerts
        thumb.press("ArrowLeft")
    expect(values.first).to_have_text(lowered)
    alerts = page.get_by_test_id("stMetric").filter(has_text="Alerts per day")
    expect(alerts.get_by_test_id("stMetricDelta")).to_contain_text("+", timeout=RUN_TIMEOUT_MS)
    settle(page)

    save = page.get_by_test_id("stForm").filter(has_text="Save these cuts")
    save.get_by_role("textbox", name="Why").fill("review team takes more alerts a day")
    save.get_by_role("button", name="Save tiers").click()
    page.get_by_text(f"Saved tiers of {MODEL_ID}").wait_for(timeout=RUN_TIMEOUT_MS)
    expect(page.get_by_text(f"review at score ≥ {lowered}").first).to_be_visible()  # the flash and the caption
    page.get_by_role("heading", name="Tier changes", exact=True).wait_for()
    tier_log = page.get_by_test_id("stDataFrame").last
    expect(grid_cell(tier_log, "review team takes more alerts a day")).to_be_attached(timeout=RUN_TIMEOUT_MS)

    promote = page.get_by_test_id("stForm").filter(has_text="Why promote")
    promote.get_by_role("textbox", name="Why promote").fill("first model on the demo data")
    promote.get_by_role("button", name=f"Promote {MODEL_ID} to champion").click()
    page.get_by_text(f"{MODEL_ID} is now the champion").wait_for(timeout=RUN_TIMEOUT_MS)
    expect(page.get_by_test_id("stSidebar")).to_contain_text(f"Champion · {MODEL_ID}")
    snap(page, "compare")


def walk_score(page: Page, csv: Path) -> None:
    go_to(page, "Score")
    expect(page.get_by_role("combobox", name="Model", exact=True)).to_have_value(f"{MODEL_ID} (champion)")
    page.get_by_role("tab", name="Batch file").click()
    page.get_by_test_id("stFileUploaderDropzoneInput").set_input_files(str(csv))
    expect(page.get_by_test_id("stFileChipName")).to_have_text(csv.name, timeout=RUN_TIMEOUT_MS)
    settle(page)
    page.get_by_role("button", name="Score the file").click()
    page.get_by_text("Rows per second").wait_for(timeout=RUN_TIMEOUT_MS)
    settle(page)
    assert (metric(page, "Rows in"), metric(page, "Scored"), metric(page, "Rejected")) == (
        f"{BATCH_ROWS + 1}", f"{BATCH_ROWS}", "1")
    tier_marks = page.locator(".vega-embed [aria-label^='events: ']").evaluate_all(
        "marks => marks.map(m => m.getAttribute('aria-label'))")  # e.g. 'events: 5; tier: high; share: 1.3%'
    per_tier = {re.search(r"tier: (\w+)", m)[1]: int(re.search(r"events: (\d+)", m)[1]) for m in tier_marks}
    assert set(per_tier) <= {"high", "medium", "low"} and sum(per_tier.values()) == BATCH_ROWS, per_tier
    page.get_by_text("1 of 301 rows were rejected").wait_for()
    rejects = page.get_by_test_id("stDataFrame").nth(1)
    expect(grid_cell(rejects, "amount: not a number: twelve")).to_be_attached(timeout=RUN_TIMEOUT_MS)
    snap(page, "score")


def walk_live(page: Page) -> int:
    """Start the embedded feed and the poller; return how many events were scored into a review tier."""
    go_to(page, "Live")
    for name, value in (("Events per second", "200"), ("Events in all", str(LIVE_EVENTS))):
        field = page.get_by_role("spinbutton", name=name)
        field.fill(value)
        field.press("Enter")
    settle(page)
    page.get_by_role("button", name="Start", exact=True).click()
    page.get_by_text("Polling started.").wait_for(timeout=RUN_TIMEOUT_MS)
    stored = page.get_by_test_id("stMetric").filter(has_text="Stored")  # refreshed every 2 s while events arrive
    expect(stored).to_contain_text(f"{LIVE_EVENTS:,}", timeout=RUN_TIMEOUT_MS)
    # the caption also counts the demo history the feed continues (stored unscored before the first start)
    totals = page.get_by_text("The store holds").filter(has_text=LIVE_SCORES)
    scored = [number(n) for n in LIVE_SCORES.search(totals.inner_text()).groups()]
    assert sum(scored) == LIVE_EVENTS, scored  # every live event was scored once
    alerts = scored[0] + scored[1]
    assert alerts > 0, "the live feed raised no alert, so no case opened"
    snap(page, "live")
    return alerts


def walk_review(page: Page, alerts: int) -> str:
    """Open the top case, claim it, record confirmed fraud; it leaves the open queue. Returns the case's tier."""
    go_to(page, "Review queue")
    page.get_by_text(f"{alerts:,} cases · showing").wait_for(timeout=RUN_TIMEOUT_MS)
    page.get_by_role("combobox", name="Open a case").click()
    top = page.get_by_role("option").first
    label = top.inner_text()  # '#17 · high · 28% × 739.62'
    case_id, tier = re.match(r"#(\d+) · (\w+)", label).groups()
    top.click()
    page.get_by_role("heading", name=f"Case {case_id}", exact=True).wait_for(timeout=RUN_TIMEOUT_MS)
    settle(page)

    page.get_by_role("button", name="Claim").click()
    page.get_by_text(f"You claimed case {case_id}.").wait_for(timeout=RUN_TIMEOUT_MS)
    expect(page.get_by_text("Status ·")).to_contain_text(f"held by {ANALYST}")
    decide = page.get_by_test_id("stForm").filter(has_text="Disposition")
    decide.get_by_text("confirmed fraud", exact=True).click()
    note = "Three terminals in an hour; the cardholder says it was not them."
    decide.get_by_role("textbox", name="Note").fill(note)
    decide.get_by_role("button", name="Record decision").click()
    page.get_by_text(f"Case {case_id}: recorded confirmed fraud.").wait_for(timeout=RUN_TIMEOUT_MS)
    settle(page)

    page.get_by_text(f"{alerts - 1:,} cases · showing").wait_for()  # the open & pending queue lost it
    expect(page.get_by_text("Status ·")).to_contain_text(f"closed: confirmed fraud ({ANALYST})")
    page.get_by_role("combobox", name="Open a case").click()
    listed = page.get_by_role("option").all_inner_texts()
    page.keyboard.press("Tab")  # closes the list; Escape would also clear the picker (and close the case)
    assert len(listed) == alerts and not any(o.startswith(f"#{case_id} ·") for o in listed), listed
    page.get_by_role("tab", name="Audit trail").click()
    trail = page.get_by_test_id("stDataFrame").last
    for text in ("claimed", "decided: confirmed fraud", note):
        expect(grid_cell(trail, text)).to_be_attached(timeout=RUN_TIMEOUT_MS)
    snap(page, "review")
    return tier


def walk_monitor(page: Page, decided_tier: str) -> None:
    go_to(page, "Monitor")
    page.get_by_text(f"{LIVE_EVENTS:,} events scored live by the champion").wait_for(timeout=RUN_TIMEOUT_MS)
    page.get_by_role("heading", name="Inputs, ranked by how much they drive current alerts", exact=True).wait_for(
        timeout=RUN_TIMEOUT_MS)
    settle(page)
    snap(page, "monitor")
    page.get_by_role("tab", name="Alerts & precision").click()
    precision = page.get_by_test_id("stMetric").filter(has_text=f"{decided_tier.title()} precision")
    expect(precision).to_contain_text("100.0%")  # the one decided alert was confirmed fraud


def test_an_analyst_builds_a_model_scores_a_batch_and_works_a_live_case(app_url, page, isolated_paths, tmp_path):
    csv = batch_file(isolated_paths / "data" / "demo_transactions.parquet", tmp_path)
    page.goto(app_url)
    page.get_by_role("heading", name="Fraud Workbench", exact=True).wait_for(timeout=RUN_TIMEOUT_MS)
    page.get_by_text("Still to do: a champion model").wait_for(timeout=RUN_TIMEOUT_MS)
    analyst = page.get_by_test_id("stSidebar").get_by_role("textbox", name="Analyst")
    analyst.fill(ANALYST)  # typed once: every page of this session records it
    analyst.press("Enter")
    settle(page)

    walk_data(page)
    walk_train(page)
    walk_compare(page)
    walk_score(page, csv)
    alerts = walk_live(page)
    decided_tier = walk_review(page, alerts)
    walk_monitor(page, decided_tier)

    go_to(page, "Home", heading="Fraud Workbench")
    page.get_by_text(re.compile(rf"Ready: demo dataset .*champion {MODEL_ID}")).wait_for(timeout=RUN_TIMEOUT_MS)
    snap(page, "home")


def test_a_page_url_opened_first_on_a_fresh_server_gets_the_workbench_frame(app_url, page):
    page.goto(app_url + "/data")
    page.get_by_role("heading", name="Data & EDA", exact=True).wait_for(timeout=30_000)
    nav = page.get_by_test_id("stSidebarNav").inner_text()
    assert "Home" in nav and "Data & EDA" in nav
    assert "app" not in nav.split()  # not Streamlit's legacy pages/ listing
