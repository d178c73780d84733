"""Which challenger scores the live feed in shadow (beside the champion, opening no cases): ``artifacts/shadow.json``.

The ingest path calls ``get_shadow()`` per batch and, when it returns a record, also scores the batch with
``record.model_id`` and writes those scores rows with ``shadow=True`` (``Store.write_batch`` opens cases only for
non-shadow rows). Every set and clear is appended to ``artifacts/shadow_log.jsonl`` with who, when and why.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

from fraudcore.atomic import write_text_atomic
from fraudcore.config import get_paths
from fraudcore.errors import FraudcoreError, ModelArtifactError

__all__ = ["SHADOW_FILE", "SHADOW_LOG", "ShadowRecord", "clear_shadow", "get_shadow", "set_shadow", "shadow_log"]

SHADOW_FILE = "shadow.json"
SHADOW_LOG = "shadow_log.jsonl"


class ShadowRecord(BaseModel):
    """The shadow challenger, who chose it, when (UTC) and why."""

    model_config = ConfigDict(extra="forbid")

    model_id: str
    set_by: str
    set_at: datetime
    why: str = ""


def _root(root: Path | str | None) -> Path:
    return Path(root) if root is not None else get_paths().artifacts


def _log(root: Path, action: str, model_id: str, who: str, why: str) -> None:
    entry = {"at": datetime.now(UTC).isoformat(), "action": action, "model_id": model_id, "who": who, "why": why}
    with (root / SHADOW_LOG).open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(entry) + "\n")


def _who(who: str) -> str:
    if not who or not who.strip():
        raise FraudcoreError("say who changes the shadow model (who=...)")
    return who.strip()


def set_shadow(model_id: str, who: str, why: str = "", root: Path | str | None = None) -> ShadowRecord:
    """Make ``model_id`` (a verified model that is not the champion) the shadow challenger."""
    from fraudcore.registry import champion_id, load_metadata

    who, folder = _who(who), _root(root)
    load_metadata(model_id, folder)
    if champion_id(folder) == model_id:
        raise FraudcoreError(f"{model_id!r} is the champion already; shadow a challenger (another model)")
    record = ShadowRecord(model_id=model_id, set_by=who, set_at=datetime.now(UTC), why=why.strip())
    write_text_atomic(folder / SHADOW_FILE, record.model_dump_json(indent=2))
    _log(folder, "set", model_id, who, record.why)
    return record


def get_shadow(root: Path | str | None = None) -> ShadowRecord | None:
    """The shadow challenger, or None when none is set or it has since become the champion."""
    from fraudcore.registry import champion_id

    folder = _root(root)
    path = folder / SHADOW_FILE
    if not path.is_file():
        return None
    try:
        record = ShadowRecord.model_validate_json(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValidationError) as exc:
        raise ModelArtifactError(f"{path} is damaged ({type(exc).__name__}); clear the shadow model and set it "
                                 "again") from None
    return None if champion_id(folder) == record.model_id else record


def clear_shadow(who: str, why: str = "", root: Path | str | None = None) -> str | None:
    """Stop shadow scoring; returns the model id that was shadowing (None if none was)."""
    who, folder = _who(who), _root(root)
    path = folder / SHADOW_FILE
    if not path.exists():
        return None
    try:
        model_id = json.loads(path.read_text(encoding="utf-8")).get("model_id")
    except (UnicodeDecodeError, json.JSONDecodeError, AttributeError):
        model_id = None  # a damaged file is what clearing repairs
    path.unlink()
    _log(folder, "clear", str(model_id), who, why.strip())
    return model_id


def shadow_log(root: Path | str | None = None) -> list[dict]:
    """Every shadow change, oldest first."""
    path = _root(root) / SHADOW_LOG
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
