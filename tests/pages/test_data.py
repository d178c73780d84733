"""Data & EDA page: demo data with roles, validation and charts; overriding a role; bad paths and uploads."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

import fraudcore.config
from fraudcore.config import get_paths
from fraudcore.simulate import generate_to_file
from tests.conftest import REPO

PAGE = str(REPO / "pages" / "data.py")


def page() -> AppTest:
    return AppTest.from_file(PAGE, default_timeout=90)


@pytest.fixture
def demo_ready():
    paths = get_paths().ensure()
    generate_to_file(paths.demo_dataset, rows=20_000, seed=3)
    return paths.demo_dataset


def roles(at: AppTest) -> dict[str, str]:
    table = at.dataframe[0].value
    return dict(zip(table["column"], table["role"], strict=True))


def charts(at: AppTest) -> list:
    return at.get("vega_lite_chart")


def test_demo_data_shows_roles_validation_and_charts(demo_ready):
    at = page().run()
    assert not at.exception
    assert at.radio(key="data_source").value == "Demo data"
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Rows"] == "20,000" and metrics["Columns"] == "12"
    assert roles(at)["is_fraud"] == "label" and roles(at)["amount"] == "amount"
    assert any("fraud_scenario" in w.value and "Fix" in w.value for w in at.warning)  # leakage warning
    assert len(charts(at)) == 6


def test_changing_a_role_revalidates(demo_ready):
    at = page().run()
    at.selectbox(key="override_column").set_value("amount")
    at.selectbox(key="override_role").set_value("ignored")
    at.button[0].click().run()
    assert not at.exception
    assert roles(at)["amount"] == "ignored"
    assert any("role amount" in i.value for i in at.info)  # the amount tab now asks for an amount column
    assert len(charts(at)) == 4  # amount histogram and separation (the demo's only numeric is amount) go

    at.selectbox(key="override_column").set_value("is_fraud")
    at.selectbox(key="override_role").set_value("ignored")
    at.button[0].click().run()
    assert roles(at)["is_fraud"] == "ignored"
    assert any("role label" in i.value for i in at.info)
    assert len(charts(at)) == 1  # only missing values can be shown without a label

    at.selectbox(key="override_column").set_value("channel")
    at.selectbox(key="override_role").set_value("numeric")
    at.button[0].click().run()
    assert {m.label: m.value for m in at.metric}["Errors"] != "0"
    assert any("channel" in e.value and "Fix" in e.value for e in at.error)  # text is not numeric: re-validated
    reset = next(b for b in at.button if b.label == "Reset to inferred roles")
    reset.click().run()
    assert roles(at)["is_fraud"] == "label" and roles(at)["amount"] == "amount"


def test_missing_demo_data_can_be_generated(monkeypatch):
    monkeypatch.setattr(fraudcore.config, "DEMO_ROWS", 3_000)
    at = page().run()
    assert "No demo dataset yet" in at.info[0].value
    next(b for b in at.button if b.label.startswith("Generate the demo dataset")).click().run()
    assert not at.exception
    assert get_paths().demo_dataset.is_file()
    assert {m.label: m.value for m in at.metric}["Rows"] == "3,000"


def test_bad_path_shows_an_error(tmp_path):
    at = page().run()
    at.radio(key="data_source").set_value("Path on the server").run()
    at.text_input[0].input(str(tmp_path / "nope.csv")).run()
    assert not at.exception
    assert "does not exist" in at.error[0].value
    assert not charts(at)


@pytest.mark.parametrize(("name", "content", "expected"), [
    ("empty.csv", b"", "empty"),
    ("broken.parquet", b"PAR1 this is not parquet", "Parquet"),
    ("latin.csv", "id,name\n1,Ren\xe9e\n2,Zo\xeb\n".encode("latin-1"), "not valid utf-8"),
    ("model.exe", b"MZ\x90\x00\x03\x00", "not a CSV or Parquet file"),
])
def test_bad_uploads_show_an_error(name, content, expected):
    at = page().run()
    at.radio(key="data_source").set_value("Upload a file").run()
    at.file_uploader[0].upload(name, content).run()
    assert not at.exception
    assert at.error and expected in at.error[0].value
    assert not charts(at)
