"""House rules checked mechanically: ruff clean, fraudcore never imports streamlit, pages never import engines."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from tests.conftest import REPO


def test_ruff_is_clean():
    ruff = shutil.which("ruff") or str(REPO / ".venv" / "bin" / "ruff")
    if not shutil.which(ruff):
        pytest.skip("ruff is not installed in this environment (it is in requirements.txt)")
    result = subprocess.run([ruff, "check", "fraudcore", "tests", "pages", "app.py"], cwd=REPO,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:]


def _imports(folder: str) -> dict[str, list[str]]:
    found = {}
    for path in (REPO / folder).rglob("*.py"):
        found[str(path.relative_to(REPO))] = re.findall(r"^\s*(?:import|from)\s+([\w.]+)", path.read_text(), re.M)
    return found


def test_fraudcore_never_imports_streamlit():
    offenders = {f: m for f, mods in _imports("fraudcore").items() for m in mods if m.split(".")[0] == "streamlit"}
    assert offenders == {}


def test_pages_call_fraudcore_not_engines():
    engines = {"xgboost", "shap", "duckdb", "sklearn"}
    offenders = {f: m for f, mods in _imports("pages").items() for m in mods if m.split(".")[0] in engines}
    assert offenders == {}


def test_nothing_unpickles():
    pattern = re.compile(r"pickle\.loads?\(|joblib\.load\(|read_pickle\(|allow_pickle\s*=\s*True")
    hits = [str(p.relative_to(REPO)) for folder in ("fraudcore", "pages") for p in (REPO / folder).rglob("*.py")
            if pattern.search(p.read_text())] + (["app.py"] if pattern.search((REPO / "app.py").read_text()) else [])
    assert hits == []


def test_public_api_is_reexported_lazily():
    import subprocess
    import sys

    code = ("import sys, fraudcore; assert 'xgboost' not in sys.modules; "
            "names = [n for n in fraudcore.__all__ if n != '__version__']; "
            "missing = [n for n in names if getattr(fraudcore, n, None) is None]; print(missing)")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
