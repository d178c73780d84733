"""Home page: describes the workbench and tells whether the demo data exists."""

from __future__ import annotations

from fraudcore.config import get_paths


def test_home_describes_workbench_and_missing_demo_data(app):
    assert not app.exception
    assert app.title[0].value == "Fraud Workbench"
    assert "five fraud patterns" in app.markdown[0].value
    assert [m.label for m in app.metric] == ["Data folder", "Artifacts folder", "Workbench database"]
    assert "No demo dataset yet" in app.info[0].value


def test_home_sees_demo_data_once_present(app):
    paths = get_paths().ensure()
    paths.demo_dataset.write_bytes(b"placeholder")
    app.run()
    assert "Demo dataset ready" in app.success[0].value
