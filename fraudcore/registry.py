"""Model registry without pickle: ``artifacts/<model_id>/`` holds model files, metadata.json and card.md.

``artifacts/champion.json`` names the model that scores. Loading is deny-by-default: the metadata's format version
must be one this code reads, its algorithm must be known, every model file must match the sha256 recorded when it
was saved, and nothing else may sit in the folder. Every file is written atomically (temp file or folder, then rename).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from fraudcore.atomic import write_text_atomic
from fraudcore.config import get_paths
from fraudcore.errors import FraudcoreError, ModelArtifactError
from fraudcore.metadata import (  # re-exported: the registry's public API includes the metadata record
    CARD_FILE,
    CHAMPION_FILE,
    FORMAT_VERSION,
    METADATA_FILE,
    READABLE_FORMATS,
    RESERVED_NAMES,
    ModelMetadata,
    _jsonable,
    check_input_schema,
    check_name,
    data_fingerprint,
    library_differences,
    library_versions,
    required_columns,
    seal_of,
)
from fraudcore.thresholds import ThresholdChange, TierPolicy

__all__ = [
    "CARD_FILE", "CHAMPION_FILE", "FORMAT_VERSION", "METADATA_FILE", "READABLE_FORMATS", "RESERVED_NAMES",
    "ChampionRecord", "ModelMetadata", "champion_id", "check_input_schema", "check_name", "data_fingerprint",
    "library_differences", "library_versions", "list_models", "load_metadata", "load_model", "promote",
    "required_columns", "save_model", "update_tiers",
]

def _root(root: Path | str | None) -> Path:
    return Path(root) if root is not None else get_paths().artifacts


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _model_class(algo: str) -> type:
    """The model class for ``algo`` (from fraudcore.models), or a ModelArtifactError naming the known ones."""
    from fraudcore import models

    try:
        return models.model_class(algo)
    except (KeyError, ValueError, FraudcoreError) as exc:
        raise ModelArtifactError(f"unknown algorithm {algo!r} ({exc}); this fraudcore cannot load it") from None


def _matrix_from_dict(data: dict) -> Any:
    """The MatrixSpec recorded in metadata."""
    from fraudcore.matrix import MatrixSpec

    return MatrixSpec.model_validate(data)


def _read_metadata(folder: Path) -> ModelMetadata:
    """Parse metadata.json, checking its format version before anything else."""
    where = f"model {folder.name!r}: {METADATA_FILE}"
    path = folder / METADATA_FILE
    if not path.is_file():
        raise ModelArtifactError(f"{where} is missing; the artifact is incomplete: retrain or restore the folder")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelArtifactError(f"{where} is not valid JSON ({exc}); it was damaged: restore it or retrain") from None
    version = raw.get("format_version") if isinstance(raw, dict) else None
    if type(version) is not int:
        raise ModelArtifactError(f"{where} has no integer format_version; it is not a fraudcore model: retrain")
    if version > max(READABLE_FORMATS):
        raise ModelArtifactError(f"{where} has format_version {version}, newer than this fraudcore reads "
                                 f"(up to {max(READABLE_FORMATS)}); upgrade fraudcore to load it")
    if version not in READABLE_FORMATS:
        raise ModelArtifactError(f"{where} has unknown format_version {version} (readable: {READABLE_FORMATS}); "
                                 "retrain the model")
    try:
        meta = ModelMetadata.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or '(top)'}: {e['msg']}" for e in exc.errors()[:5])
        raise ModelArtifactError(
            f"{where} does not match format {version}: {problems}; restore it or retrain"
        ) from None
    if (version >= 2 or raw.get("sealed") is not None) and raw.get("sealed") != seal_of(raw):
        raise ModelArtifactError(f"{where} was changed after it was written (its seal does not match): scoring reads "
                                 "its categories, parameters and tiers, so it is refused; restore it or retrain "
                                 "(tiers change through the Compare page or update_tiers, which keeps a log)")
    if meta.model_id != folder.name:
        raise ModelArtifactError(f"{where} names model {meta.model_id!r} but sits in folder {folder.name!r}; "
                                 "rename the folder back (or retrain)")
    return meta


def _verified(folder: Path) -> ModelMetadata:
    """Metadata of an artifact whose algorithm is known and whose files are exactly the recorded, unchanged ones."""
    check_name(folder.name)
    if folder.is_symlink():
        raise ModelArtifactError(f"model folder {folder} is a symlink; copy the real folder into {folder.parent}")
    if not folder.is_dir():
        raise ModelArtifactError(f"no model {folder.name!r} in {folder.parent}; list the models or train one")
    meta = _read_metadata(folder)
    _model_class(meta.algo)
    if not meta.files:
        raise ModelArtifactError(f"model {meta.model_id!r} records no model files; retrain it")
    for name, expected in meta.files.items():
        path = folder / name
        if path.is_symlink() or not path.is_file():
            raise ModelArtifactError(f"model {meta.model_id!r}: {name} is missing (or not a plain file); "
                                     "restore it from a backup or retrain")
        if _sha256(path) != expected:
            raise ModelArtifactError(f"model {meta.model_id!r}: {name} sha256 mismatch: the file was changed after "
                                     "training; retrain or restore it")
    unexpected = sorted(p.name for p in folder.iterdir() if p.name not in meta.files and p.name not in RESERVED_NAMES)
    if unexpected:
        raise ModelArtifactError(f"model {meta.model_id!r}: unexpected files {unexpected} in {folder}; a model "
                                 "folder holds only what training wrote: remove them or retrain")
    return meta


def load_model(model_id: str, root: Path | str | None = None) -> tuple[Any, ModelMetadata]:
    """The model and its metadata, after every check in ``_verified``; ModelArtifactError says what is wrong."""
    folder = _root(root) / check_name(model_id)
    meta = _verified(folder)
    cls = _model_class(meta.algo)
    try:
        model = cls.load(folder, meta.params, _matrix_from_dict(meta.features.get("matrix") or {}))
    except ModelArtifactError:
        raise
    except (OSError, ValueError, KeyError, TypeError, FraudcoreError) as exc:
        raise ModelArtifactError(f"model {model_id!r} ({meta.algo}) failed to load: {exc}; retrain it") from exc
    names = meta.feature_names
    if names and list(model.matrix_.feature_names) != names:
        raise ModelArtifactError(f"model {model_id!r}: loaded feature names differ from metadata; retrain it")
    return model, meta


def load_metadata(model_id: str, root: Path | str | None = None) -> ModelMetadata:
    """A model's metadata after every check in ``_verified``, without loading the model itself."""
    return _verified(_root(root) / check_name(model_id))


def save_model(model: Any, metadata: ModelMetadata, root: Path | str | None = None, overwrite: bool = False,
               extra_files: dict[str, str] | None = None) -> Path:
    """Write ``model`` and its metadata to ``root/<model_id>`` atomically; ``files``, matrix, names and params are
    filled from the model; ``extra_files`` (name -> text, e.g. reference.json) are written and hashed beside the
    model's own. Refuses an existing id unless ``overwrite``."""
    root = _root(root)
    target = root / check_name(metadata.model_id)
    if target.exists() and not overwrite:
        raise ModelArtifactError(f"model {metadata.model_id!r} already exists in {root}; choose another id "
                                 "(or pass overwrite=True)")
    if getattr(model, "algo", None) != metadata.algo:
        raise ModelArtifactError(f"metadata says algo {metadata.algo!r} but the model is {model.algo!r}")
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".tmp-{metadata.model_id}-{uuid.uuid4().hex}"
    tmp.mkdir()
    try:
        names = list(model.save(tmp))
        for name, text in (extra_files or {}).items():
            if name in names:
                raise ModelArtifactError(f"extra file {name!r} clashes with a file the {model.algo} model writes")
            (tmp / check_name(name, "model file name")).write_text(text, encoding="utf-8")
            names.append(name)
        files = _hash_written(tmp, names)
        meta = _completed(metadata, model, files)
        from fraudcore.model_card import render_card

        (tmp / METADATA_FILE).write_text(meta.to_json(), encoding="utf-8")
        (tmp / CARD_FILE).write_text(render_card(meta), encoding="utf-8")
        _move_into_place(tmp, target, overwrite)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _hash_written(folder: Path, names: Iterable[str]) -> dict[str, str]:
    names = list(names)
    for name in names:
        check_name(name, "model file name")
    written = sorted(p.name for p in folder.iterdir())
    if sorted(names) != written or any(not (folder / n).is_file() for n in names):
        raise ModelArtifactError(f"the model reported files {sorted(names)} but wrote {written}; fix its save()")
    return {name: _sha256(folder / name) for name in names}


def _completed(metadata: ModelMetadata, model: Any, files: dict[str, str]) -> ModelMetadata:
    """Metadata with files, matrix, feature names and params taken from the model (given ones must agree)."""
    taken = {"matrix": _jsonable(model.matrix_, "matrix"), "names": [str(n) for n in model.matrix_.feature_names]}
    features = dict(metadata.features)
    for key, value in taken.items():
        if features.get(key) and features[key] != value:
            raise ModelArtifactError(f"metadata features.{key} differs from the model's; build metadata from the "
                                     "fitted model (or leave it empty)")
        features[key] = value
    features.setdefault("config", None)
    params = _jsonable(model.get_params(), "params")
    if metadata.params and metadata.params != params:
        raise ModelArtifactError("metadata params differ from model.get_params(); leave params empty to record them")
    data = metadata.model_dump()
    return ModelMetadata.model_validate({**data, "features": features, "params": params, "files": files})


def _move_into_place(tmp: Path, target: Path, overwrite: bool) -> None:
    old = target.with_name(f".old-{target.name}-{uuid.uuid4().hex}")
    if overwrite and target.exists():
        os.rename(target, old)
    try:
        os.rename(tmp, target)
    except OSError as exc:
        if old.exists():
            os.rename(old, target)
        raise ModelArtifactError(f"could not move model {target.name!r} into place ({exc}); another save may "
                                 "have claimed the id: choose another id") from exc
    shutil.rmtree(old, ignore_errors=True)


def list_models(root: Path | str | None = None) -> list[dict]:
    """Every model folder, newest first: id, algo, created, headline test metrics, champion flag; broken ones last,
    with ``error`` saying what is wrong (never raised)."""
    root = _root(root)
    if not root.is_dir():
        return []
    try:
        champion = champion_id(root)
    except ModelArtifactError:
        champion = None
    good, broken = [], []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        row: dict[str, Any] = {"model_id": folder.name, "algo": None, "created_at": None, "created_by": None,
                               "split": None, "average_precision": None, "roc_auc": None,
                               "champion": folder.name == champion, "error": None}
        try:
            meta = _verified(folder)
        except ModelArtifactError as exc:
            broken.append({**row, "error": str(exc)})
            continue
        test = meta.metrics.get("test") or {}
        good.append({**row, "algo": meta.algo, "created_at": meta.created_at, "created_by": meta.created_by,
                     "split": meta.split.get("kind"), "average_precision": test.get("average_precision"),
                     "roc_auc": test.get("roc_auc")})
    return sorted(good, key=lambda r: r["created_at"], reverse=True) + broken


class ChampionRecord(BaseModel):
    """champion.json: which model scores, since when, who chose it and why, and which one it replaced."""

    model_config = ConfigDict(extra="forbid")

    format_version: int = FORMAT_VERSION
    model_id: str
    promoted_at: datetime
    by: str
    why: str = ""
    previous: str | None = None


def _read_champion(root: Path) -> ChampionRecord | None:
    path = root / CHAMPION_FILE
    if not path.is_file():
        return None
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        version = raw.get("format_version")
        if type(version) is int and version > max(READABLE_FORMATS):
            raise ModelArtifactError(f"{path} has format_version {version}, newer than this fraudcore reads; "
                                     "upgrade fraudcore")
        record = ChampionRecord.model_validate(raw)
        check_name(record.model_id)
    except (UnicodeDecodeError, json.JSONDecodeError, AttributeError, ValidationError) as exc:
        raise ModelArtifactError(f"{path} is damaged ({type(exc).__name__}); promote a model again to rewrite it") \
            from None
    return record


def champion_id(root: Path | str | None = None) -> str | None:
    """The id champion.json names, or None when no model was promoted."""
    record = _read_champion(_root(root))
    return None if record is None else record.model_id


def promote(model_id: str, root: Path | str | None = None, who: str = "cli", why: str = "") -> dict:
    """Make ``model_id`` the champion (after checking it loads); returns the champion.json record."""
    root = _root(root)
    load_model(model_id, root)
    if not who.strip():
        raise FraudcoreError("say who promotes the model (who=...)")
    try:
        previous = champion_id(root)
    except ModelArtifactError:
        previous = None  # a damaged pointer is what promoting repairs
    record = ChampionRecord(model_id=model_id, promoted_at=datetime.now(UTC), by=who.strip(), why=why.strip(),
                            previous=previous)
    data = record.model_dump(mode="json")
    write_text_atomic(root / CHAMPION_FILE, json.dumps(data, indent=2, ensure_ascii=False))
    return data


def update_tiers(model_id: str, new: TierPolicy, who: str, why: str, root: Path | str | None = None) -> ModelMetadata:
    """Set a model's tier policy, appending ThresholdChange(old, new, who, why) to its tier_log; rewrites
    metadata.json and card.md atomically (model files are untouched, so their hashes still hold)."""
    from fraudcore.model_card import render_card

    folder = _root(root) / check_name(model_id)
    meta = _verified(folder)
    try:
        change = ThresholdChange(who=who, old=meta.tiers, new=new, why=why)
    except ValidationError as exc:
        raise FraudcoreError(f"a tier change needs who and why (non-empty): {exc.errors()[0]['msg']}") from None
    updated = ModelMetadata.model_validate({**meta.model_dump(), "tiers": new, "tier_log": [*meta.tier_log, change],
                                            "format_version": FORMAT_VERSION})  # written sealed, so read as sealed
    text = updated.to_json()
    write_text_atomic(folder / METADATA_FILE, text)
    write_text_atomic(folder / CARD_FILE, render_card(updated))
    return ModelMetadata.model_validate(json.loads(text))  # as it now reads from the file, seal included


def check_new_model_id(model_id: str, root: Path | str | None = None) -> str:
    """``model_id`` stripped, if it is a valid name no model in the registry uses yet; ModelArtifactError otherwise."""
    model_id = check_name(model_id.strip())
    folder = _root(root)
    if (folder / model_id).exists():
        raise ModelArtifactError(f"model {model_id!r} already exists in {folder}; choose another id")
    return model_id
