"""HTTP routes served by the app process itself (mounted by app.py on the st.App); plain Starlette, no Streamlit."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from fraudcore import __version__
from fraudcore.config import get_paths


async def health(request: Request) -> JSONResponse:
    """Liveness and where the workbench keeps its files (existence only)."""
    paths = get_paths()
    return JSONResponse({
        "status": "ok",
        "version": __version__,
        "data_dir_exists": paths.data.is_dir(),
        "artifacts_dir_exists": paths.artifacts.is_dir(),
        "db_exists": paths.db.is_file(),
        "demo_dataset_exists": paths.demo_dataset.is_file(),
    })


def api_routes() -> list[Route]:
    """Every /api/* route of the workbench."""
    return [Route("/api/health", health, methods=["GET"])]
