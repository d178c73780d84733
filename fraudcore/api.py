"""HTTP routes served by the app process itself (mounted by app.py on the st.App); plain Starlette, no Streamlit.

``POST /api/score`` takes one event object or a list of them (the dataset's fields) as ``application/json`` and
answers, for a single object, one result ``{"event_id", "score", "tier", "reasons", "model_id"}`` (reasons: the top
3 for every event); for a list, ``{"model_id", "results": [result, ...]}`` in the order sent. Every scored event is
stored in the workbench's DuckDB file through the process's one store writer (a re-sent event id is stored once).
Write-behind by default (``FRAUDCORE_API_WRITE=async``): the answer leaves once the events are scored and handed to
the store writer, which commits them within ``ASYNC_LINGER_S`` (grouped with other requests and whatever else is
queued: one commit per request, ~6 ms of work each, crowded 100 requests/s; the app's shutdown commits what is
queued). ``FRAUDCORE_API_WRITE=sync`` answers only after the commit (a failed write: 503).
Errors are JSON ``{"error", "message", "errors"?: [{"field", "message"}]}``: 401 without the configured key,
413 over the size or count limit, 415 for another content type, 422 for bad JSON or fields, 503 without a champion.
"""

from __future__ import annotations

import hmac
import json
import os
import sys
import time
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from fraudcore import __version__, runtime
from fraudcore.config import get_paths
from fraudcore.errors import FraudcoreError, ModelArtifactError
from fraudcore.ingest import prepare, submit
from fraudcore.scoring import EventValidationError, ScoredEvent, Scorer

__all__ = ["ENV_API_WRITE", "JSON_TYPE", "MAX_BODY_BYTES", "MAX_EVENTS", "ROUTES", "ApiError", "api_routes",
           "check_content_type", "check_key", "parse_events", "read_body", "score_and_store", "write_mode"]

MAX_BODY_BYTES = 1 << 20  # 1 MiB
MAX_EVENTS = 1000
JSON_TYPE = "application/json"
REASONS_PER_EVENT = 3
ALL_TIERS = ("low", "medium", "high")  # the API explains every event, not only alerts
ENV_API_WRITE = "FRAUDCORE_API_WRITE"  # async (default): answer, then commit; sync: commit, then answer
ROUTES = {"/api/health": ("GET", "HEAD"), "/api/score": ("POST",), "/api/models/champion": ("GET", "HEAD")}
ASYNC_LINGER_S = 0.05  # async: the writer may hold an answered request's events this long to commit several at once
_KEY_HINT = ("send it in the X-API-Key header (or 'Authorization: Bearer KEY'); the server's key is FRAUDCORE_API_KEY "
             "or api_key in .streamlit/secrets.toml")


class ApiError(Exception):
    """An answer other than 200: HTTP status, a short error code, a message saying what to do, field errors."""

    def __init__(self, status: int, error: str, message: str, errors: list[dict[str, str]] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.error, self.message, self.errors, self.headers = status, error, message, errors, headers

    def response(self) -> JSONResponse:
        """The JSON error body with its status and headers."""
        body: dict[str, Any] = {"error": self.error, "message": self.message}
        if self.errors is not None:
            body["errors"] = self.errors
        return JSONResponse(body, status_code=self.status, headers=self.headers)


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


async def score(request: Request) -> JSONResponse:
    """Score and store one event or a list of events with the champion model (a ``Server-Timing`` header says how
    long the handler took, in ms, from the request's headers to its answer)."""
    started = time.perf_counter()
    try:
        workbench = runtime.current()
        check_key(request, workbench.api_key)
        check_content_type(request)
        events, single = parse_events(await read_body(request))
        results, model_id = await run_in_threadpool(score_and_store, workbench, events, single)
    except ApiError as exc:
        return exc.response()
    except ClientDisconnect:  # the client left mid-body: nothing scored, nobody to answer
        return JSONResponse({"error": "client_disconnected", "message": "the body did not arrive"}, status_code=400)
    response = JSONResponse(results[0] if single else {"model_id": model_id, "results": results})
    response.headers["Server-Timing"] = f"score;dur={(time.perf_counter() - started) * 1000:.3f}"
    return response


async def champion(request: Request) -> JSONResponse:
    """The champion model: id, algorithm, tier cuts and its headline test metrics."""
    try:
        workbench = runtime.current()
        check_key(request, workbench.api_key)
        scorer = await run_in_threadpool(_champion_scorer, workbench)
    except ApiError as exc:
        return exc.response()
    meta, test = scorer.metadata, scorer.metadata.metrics.get("test") or {}
    return JSONResponse({
        "model_id": meta.model_id, "algo": meta.algo, "created_at": meta.created_at.isoformat(),
        "split": meta.split.get("label"),
        "tiers": {"high": meta.tiers.high.threshold, "medium": meta.tiers.medium.threshold},
        "test_metrics": {m: test.get(m) for m in ("average_precision", "roc_auc", "n_fraud")},
        "fields": {"event_id": scorer.spec.event_id, "event_time": scorer.spec.event_time,
                   "amount": scorer.spec.amount, "entities": scorer.entities},
    })


async def not_found(request: Request) -> JSONResponse:
    """Any other /api/* path, whatever the method: 404 naming the routes there are."""
    return ApiError(404, "not_found", f"there is no {request.url.path}; the API serves {', '.join(ROUTES)}").response()


def api_routes() -> list[Route]:
    """Every /api/* route of the workbench. Each path answers every method (another method than its own gets a JSON
    405 with ``Allow``, not the page Streamlit would serve for a GET), and any other /api/* path a JSON 404."""
    handlers = {"/api/health": health, "/api/score": score, "/api/models/champion": champion}
    return [*(Route(path, _only(methods, handlers[path]), methods=_ANY) for path, methods in ROUTES.items()),
            Route("/api/{rest:path}", not_found, methods=_ANY)]


_ANY = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]  # a function's Route is GET-only by default


def _only(methods: tuple[str, ...], handler: Any) -> Any:
    async def endpoint(request: Request) -> JSONResponse:
        if request.method not in methods:
            shown = [m for m in methods if m != "HEAD"]
            return ApiError(405, "method_not_allowed", f"{request.url.path} answers {' and '.join(shown)}, not "
                            f"{request.method}", headers={"Allow": ", ".join(methods)}).response()
        return await handler(request)

    endpoint.__name__ = endpoint.__qualname__ = handler.__name__
    endpoint.__doc__ = handler.__doc__
    return endpoint


# ---- request checks: each raises ApiError with the status and a message saying what to send instead -------------

def check_key(request: Request, key: str | None) -> None:
    """401 unless no key is configured or the request carries it (X-API-Key or Authorization: Bearer)."""
    if not key:
        return
    sent = request.headers.get("x-api-key", "").strip() or None  # an empty header is no key: Bearer may carry it
    if sent is None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        sent = token.strip() if scheme.lower() == "bearer" else None
    challenge = {"WWW-Authenticate": 'Bearer realm="fraud-workbench"'}
    if not sent:
        raise ApiError(401, "unauthorized", f"this API needs a key: {_KEY_HINT}", headers=challenge)
    if not hmac.compare_digest(sent.encode("utf-8", "surrogateescape"), key.encode("utf-8")):
        raise ApiError(401, "unauthorized", f"the API key sent is not the configured one; {_KEY_HINT}",
                       headers=challenge)


def check_content_type(request: Request) -> None:
    """415 unless the body is declared as application/json (or a +json type)."""
    declared = request.headers.get("content-type", "")
    media = declared.split(";", 1)[0].strip().lower()
    if media != JSON_TYPE and not (media.startswith("application/") and media.endswith("+json")):
        found = f"'{declared}'" if declared else "no Content-Type"
        raise ApiError(415, "unsupported_media_type",
                       f"expected a body of type {JSON_TYPE}, got {found}; send 'Content-Type: {JSON_TYPE}'")


async def read_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The request body, refusing (413) a declared or streamed size over ``limit`` bytes without buffering it (the
    server discards the rest of a refused body, so the client reads the answer on its kept-alive connection)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.strip().isdigit() and int(declared) > limit:
        raise _too_large(f"the body is {int(declared):,} bytes", limit)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(f"the body is over {limit:,} bytes", limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(found: str, limit: int) -> ApiError:
    return ApiError(413, "payload_too_large", f"{found}; the limit is {limit:,} bytes ({limit // 1024} KiB) per "
                    f"request and {MAX_EVENTS} events: split the events over several requests")


def parse_events(body: bytes, max_events: int = MAX_EVENTS) -> tuple[list[Any], bool]:
    """The events in a JSON body and whether it was a single object; 422 for bad JSON or shape, 413 for too many."""
    if not body.strip():
        raise _unprocessable("(body)", "the body is empty; send one event object or a list of them")
    try:
        payload = json.loads(body, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise _unprocessable("(body)", f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    except UnicodeDecodeError as exc:
        raise _unprocessable("(body)", f"the body is not UTF-8 text (byte {exc.start}); send JSON in UTF-8") from None
    except ValueError as exc:
        if "integer string conversion" in str(exc):  # Python's own limit, with advice meant for the server
            raise _unprocessable("(body)", f"a number in the body has more than {sys.get_int_max_str_digits():,} "
                                 "digits; send numbers of ordinary size (a long id can be sent as text)") from None
        raise _unprocessable("(body)", str(exc)) from None
    except RecursionError:
        raise _unprocessable("(body)", "the JSON is nested too deeply; send flat event objects") from None
    if isinstance(payload, dict):
        return [payload], True
    if not isinstance(payload, list):
        raise _unprocessable("(body)", f"expected an event object or a list of them, got a JSON "
                             f"{_json_kind(payload)}")
    if not payload:
        raise _unprocessable("(body)", "the list is empty; send at least one event")
    if len(payload) > max_events:
        raise ApiError(413, "payload_too_large", f"the list holds {len(payload):,} events; the limit is {max_events} "
                       "per request: split them over several requests")
    return payload, False


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON; send null for an unknown value")


def _json_kind(value: Any) -> str:
    return {str: "string", bool: "boolean", int: "number", float: "number", type(None): "null"}.get(type(value),
                                                                                                  "value")


def _unprocessable(field: str, message: str) -> ApiError:
    return ApiError(422, "invalid_request", message, errors=[{"field": field, "message": message}])


# ---- the CPU part (runs in the thread pool so the event loop keeps serving the pages' websockets) ----------------

def write_mode() -> str:
    """How POST /api/score stores: 'async' (answer once scored; committed a few ms later) or 'sync' (after the
    commit), from FRAUDCORE_API_WRITE; anything else is refused with what to set."""
    mode = os.environ.get(ENV_API_WRITE, "async").strip().lower() or "async"
    if mode not in ("async", "sync"):
        raise ApiError(500, "misconfigured", f"{ENV_API_WRITE}={mode!r} is not a write mode; set it to async "
                       "(answer, then commit) or sync (commit, then answer) and restart the app")
    return mode


def score_and_store(workbench: runtime.Workbench, events: list[Any], single: bool = False,
                    ) -> tuple[list[dict[str, Any]], str]:
    """Validate every event (422 listing each bad field, nothing stored), score with the champion, explain every
    event (top 3), hand events and scores to the store writer (one transaction; see ``write_mode``); returns the
    results in order and the model id. ``single``: the body was one object, not a list (fields named without the
    "[i]." of a list)."""
    mode = write_mode()
    scorer = _champion_scorer(workbench)
    try:
        prepared = prepare(workbench, events, source="api", strict=True, k=REASONS_PER_EVENT,
                           explain_tiers=ALL_TIERS, model_id=scorer.model_id)
    except EventValidationError as exc:
        errors = [{"field": e["field"].removeprefix("[0].") if single else e["field"], "message": e["message"]}
                  for e in exc.errors]
        raise ApiError(422, "invalid_events", _invalid_message(errors), errors=errors) from None
    try:
        ticket = submit(workbench, prepared, linger_s=ASYNC_LINGER_S if mode == "async" else 0.0)
        if mode == "sync":
            prepared.result.stored = ticket.wait()
    except FraudcoreError as exc:
        raise ApiError(503, "not_stored", f"{exc}. The events were scored but not stored; send them again") from None
    result = prepared.result
    return [_result(scorer, s) for s in result.scored], result.model_id


def _result(scorer: Scorer, scored: ScoredEvent) -> dict[str, Any]:
    """The response entry; an event stored earlier without reasons (the feed explains only alerts) gets them now."""
    reasons = scored.reasons
    if not reasons and scored.features and scored.model_id == scorer.model_id:
        reasons = scorer.reasons([scored.features], REASONS_PER_EVENT)[0]
    plain = ScoredEvent(scored.event_id, scored.score, scored.tier, scored.model_id, reasons).to_dict()
    del plain["features"]
    return plain


def _champion_scorer(workbench: runtime.Workbench) -> Any:
    try:
        return workbench.scorer()
    except ModelArtifactError as exc:
        raise ApiError(503, "no_champion", f"{exc}. Train one on the Train page (or python -m fraudcore train) and "
                       "promote it (python -m fraudcore promote MODEL_ID), then retry") from None


def _invalid_message(errors: list[dict[str, str]]) -> str:
    fields = ", ".join(dict.fromkeys(e["field"] for e in errors))
    return f"{len(errors)} invalid field(s): {fields}; fix them and resend (nothing was stored)"
