"""Registry: save -> load round trips, deny-by-default loading, champion pointer, audited tier changes, fingerprints."""

from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from fraudcore import registry
from fraudcore.errors import FraudcoreError, ModelArtifactError
from fraudcore.evaluate import curves, evaluate
from fraudcore.features import FeatureConfig
from fraudcore.loading import load_dataset
from fraudcore.matrix import MatrixSpec
from fraudcore.models import ALGOS, make_model
from fraudcore.registry import (
    CHAMPION_FILE,
    FORMAT_VERSION,
    ModelMetadata,
    champion_id,
    check_input_schema,
    check_name,
    data_fingerprint,
    library_versions,
    list_models,
    load_metadata,
    load_model,
    promote,
    save_model,
    seal_of,
    update_tiers,
)
from fraudcore.spec import DatasetSpec
from fraudcore.thresholds import ThresholdChoice, TierPolicy

SPEC = DatasetSpec(event_id="tx_id", event_time="ts", label="is_fraud", amount="amount",
                   entities=["card_id", "terminal_id"], numeric=["velocity"], categorical=["channel"])
CONFIG = FeatureConfig.from_spec(SPEC)


class StandInModel:
    """A logistic scorer saved as one JSON file: implements the FraudModel protocol without xgboost."""

    algo: ClassVar[str] = "standin"

    def __init__(self, weights: list[float], bias: float = 0.0, matrix: MatrixSpec | None = None) -> None:
        self.weights, self.bias = list(weights), bias
        self.matrix_ = matrix or MatrixSpec(numeric=["amount", "velocity"], categorical={})

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        margin = X[self.matrix_.feature_names].to_numpy(float) @ np.asarray(self.weights) + self.bias
        return 1 / (1 + np.exp(-margin))

    def get_params(self) -> dict:
        return {"bias": self.bias, "n_inputs": len(self.weights)}

    def save(self, folder: Path) -> list[str]:
        (folder / "model.json").write_text(json.dumps({"weights": self.weights}))
        return ["model.json"]

    @classmethod
    def load(cls, folder: Path, params: dict, matrix: MatrixSpec) -> StandInModel:
        weights = json.loads((folder / "model.json").read_text())["weights"]
        return cls(weights, params["bias"], matrix)


class LeakyModel(StandInModel):
    """Writes a file it does not report."""

    def save(self, folder: Path) -> list[str]:
        (folder / "secret.bin").write_bytes(b"x")
        return super().save(folder)


@pytest.fixture(autouse=True)
def stand_in_algo(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make 'standin' a known algorithm beside the real families."""
    real = registry._model_class
    monkeypatch.setattr(registry, "_model_class", lambda algo: StandInModel if algo == "standin" else real(algo))


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "artifacts"


def _choice(objective: str, target: float | None, threshold: float) -> ThresholdChoice:
    return ThresholdChoice(objective=objective, target=target, threshold=threshold, score=0.5, precision=0.8,
                           recall=0.4, alerts=12, alerts_per_day=3.0)


TIERS = TierPolicy(high=_choice("precision", 0.9, 0.8), medium=_choice("alert_budget", 100, 0.5))
FRAME = pd.DataFrame({"amount": np.linspace(-2, 2, 60), "velocity": np.tile([0.0, 1.0, -1.0], 20)})
Y = (FRAME["amount"] + FRAME["velocity"] > 1).astype(int).to_numpy()


def _metadata(model: object, model_id: str = "m1", split_kind: str = "time", X: pd.DataFrame = FRAME,
              y: np.ndarray = Y) -> ModelMetadata:
    score = model.predict_proba(X)
    times = pd.date_range("2024-03-01", periods=len(X), freq="6h")
    metrics = {part: evaluate(y, score, 0.5, amount=X["amount"].abs(), event_time=times, k=5)
               for part in ("valid", "test")}
    return ModelMetadata(
        model_id=model_id, algo=model.algo, created_by="tester",
        dataset={"source": "demo.parquet", "fingerprint": data_fingerprint(X), "n_rows": len(X), "spec": SPEC},
        features={"config": CONFIG},
        split={"kind": split_kind, "label": f"{split_kind} split for tests",
               "test": {"rows": 20, "frauds": 4, "start": "2024-03-11", "end": "2024-03-15"}},
        tiers=TIERS, metrics=metrics, curves={"test": curves(y, score, max_points=20)},
    )


def _saved(root: Path, model_id: str = "m1", weights: tuple[float, float] = (1.5, -0.5)) -> Path:
    model = StandInModel(list(weights), bias=0.25)
    return save_model(model, _metadata(model, model_id), root)


def test_round_trip_keeps_metadata_and_scores(root: Path) -> None:
    model = StandInModel([1.5, -0.5], bias=0.25)
    folder = save_model(model, _metadata(model), root)
    loaded, meta = load_model("m1", root)
    assert folder == root / "m1" and sorted(p.name for p in folder.iterdir()) == ["card.md", "metadata.json",
                                                                                 "model.json"]
    assert meta == ModelMetadata.model_validate_json((folder / "metadata.json").read_text())
    assert meta.files == {"model.json": registry._sha256(folder / "model.json")}
    assert meta.params == {"bias": 0.25, "n_inputs": 2} and meta.feature_names == ["amount", "velocity"]
    assert meta.features["config"] == CONFIG.to_dict() and meta.spec == SPEC
    assert meta.libraries == library_versions() and meta.created_at.utcoffset().total_seconds() == 0
    np.testing.assert_array_equal(loaded.predict_proba(FRAME), model.predict_proba(FRAME))
    assert not [p for p in root.iterdir() if p.name.startswith(".")]


def test_card_describes_the_model(root: Path) -> None:
    card = (_saved(root) / "card.md").read_text()
    for expected in ("# Model card: m1", "standin", "Average precision (headline)", "ROC AUC",
                     "Card precision@k per day (k=5)", "Share of fraud amount caught", "alert_budget", "block",
                     "Label delay", "assumed 7d", "Drift", "model.json", "xgboost", "card_id"):
        assert expected in card, expected
    assert "stratified random split" not in card


def test_card_warns_loudly_about_random_splits(root: Path) -> None:
    model = StandInModel([1.0, 1.0])
    save_model(model, _metadata(model, split_kind="random"), root)
    card = (root / "m1" / "card.md").read_text()
    assert "**Warning: stratified random split.**" in card and "overstates performance" in card


def test_tampered_model_file_is_refused_naming_the_file(root: Path) -> None:
    path = _saved(root) / "model.json"
    data = bytearray(path.read_bytes())
    data[5] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(ModelArtifactError, match=r"model\.json sha256 mismatch: the file was changed after training"):
        load_model("m1", root)


def test_garbled_metadata_is_refused(root: Path) -> None:
    path = _saved(root) / "metadata.json"
    text = path.read_text()
    path.write_text(text[: len(text) // 2])
    with pytest.raises(ModelArtifactError, match=r"metadata\.json is not valid JSON"):
        load_model("m1", root)


def test_metadata_with_a_broken_field_is_refused(root: Path) -> None:
    path = _saved(root) / "metadata.json"
    raw = json.loads(path.read_text())
    raw["tiers"]["high"]["threshold"] = 0.1  # below the medium cut
    raw["surprise"] = 1
    path.write_text(json.dumps(raw))
    with pytest.raises(ModelArtifactError, match=r"does not match format 2: .*tiers.*surprise"):
        load_model("m1", root)


@pytest.mark.parametrize("edit", [
    lambda raw: raw["tiers"]["medium"].update(threshold=0.25),  # a cut moved without the tier log
    lambda raw: raw["params"].update(C=123),
    lambda raw: raw["metrics"]["test"].update(average_precision=0.99),
])
def test_metadata_edited_by_hand_is_refused_and_old_unsealed_files_still_load(root: Path, edit) -> None:
    path = _saved(root) / "metadata.json"
    raw = json.loads(path.read_text())
    assert raw["format_version"] == FORMAT_VERSION == 2 and raw["sealed"] == seal_of(raw)
    edit(raw)
    for sealed in (raw["sealed"], None):  # the old seal, or none at all: both refused in format 2
        path.write_text(json.dumps({**raw, "sealed": sealed}))
        with pytest.raises(ModelArtifactError, match=r"metadata\.json was changed after it was written"):
            load_model("m1", root)
    old = {k: v for k, v in raw.items() if k != "sealed"} | {"format_version": 1}  # written before seals existed
    path.write_text(json.dumps(old))
    assert load_metadata("m1", root).sealed is None
    path.write_text(json.dumps({**old, "sealed": raw["sealed"]}))  # a format-1 file with a seal: checked too
    with pytest.raises(ModelArtifactError, match=r"metadata\.json was changed after it was written"):
        load_model("m1", root)
    path.write_text(json.dumps(old))
    update_tiers("m1", TIERS, who="ana", why="re-saved", root=root)  # an old file rewritten is sealed from then on
    assert json.loads(path.read_text())["format_version"] == FORMAT_VERSION


@pytest.mark.parametrize(("version", "message"), [(FORMAT_VERSION + 1, "newer than this fraudcore reads.*upgrade"),
                                                  (0, "unknown format_version 0"), ("1", "no integer format_version")])
def test_unknown_or_newer_format_version_is_refused(root: Path, version: object, message: str) -> None:
    path = _saved(root) / "metadata.json"
    raw = json.loads(path.read_text())
    path.write_text(json.dumps({**raw, "format_version": version, "field_from_the_future": True}))
    with pytest.raises(ModelArtifactError, match=message):
        load_model("m1", root)


def test_missing_and_unexpected_files_are_refused(root: Path) -> None:
    folder = _saved(root)
    (folder / "extra.py").write_text("print('hi')")
    with pytest.raises(ModelArtifactError, match=r"unexpected files \['extra.py'\]"):
        load_model("m1", root)
    (folder / "extra.py").unlink()
    (folder / "model.json").unlink()
    with pytest.raises(ModelArtifactError, match=r"model\.json is missing"):
        load_model("m1", root)
    with pytest.raises(ModelArtifactError, match="no model 'nope'"):
        load_model("nope", root)


def test_renamed_folder_is_refused(root: Path) -> None:
    _saved(root).rename(root / "m2")
    with pytest.raises(ModelArtifactError, match="names model 'm1' but sits in folder 'm2'"):
        load_model("m2", root)


def test_unknown_algorithm_is_refused(root: Path) -> None:
    path = _saved(root) / "metadata.json"
    raw = json.loads(path.read_text().replace('"algo": "standin"', '"algo": "mystery"'))
    path.write_text(json.dumps({**raw, "sealed": seal_of(raw)}))  # sealed again: the algorithm check speaks
    with pytest.raises(ModelArtifactError, match="unknown algorithm 'mystery'"):
        load_model("m1", root)


@pytest.mark.parametrize("bad", ["../escape", "a/b", "..", ".hidden", "", "a..b", "champion.json", "x" * 129,
                                 "with space", "/abs", "-flag"])
def test_bad_model_ids_are_refused(root: Path, bad: str) -> None:
    with pytest.raises(ModelArtifactError, match="is not allowed"):
        check_name(bad)
    with pytest.raises(ModelArtifactError, match="is not allowed"):
        load_model(bad, root)
    model = StandInModel([1.0, 1.0])
    with pytest.raises(ValidationError, match="is not allowed"):
        _metadata(model, bad)
    assert not root.exists()


@pytest.mark.parametrize("good", ["m1", "xgb-2024.05.01_a", "A"])
def test_good_model_ids_are_accepted(good: str) -> None:
    assert check_name(good) == good


def test_existing_id_is_not_overwritten_unless_asked(root: Path) -> None:
    _saved(root, weights=(1.0, 0.0))
    with pytest.raises(ModelArtifactError, match=r"already exists.*overwrite=True"):
        _saved(root, weights=(0.0, 1.0))
    first, _ = load_model("m1", root)
    assert first.weights == [1.0, 0.0]
    replacement = StandInModel([0.0, 1.0], 0.25)
    save_model(replacement, _metadata(replacement), root, overwrite=True)
    second, _ = load_model("m1", root)
    assert second.weights == [0.0, 1.0]
    assert sorted(p.name for p in root.iterdir()) == ["m1"]


def test_a_model_that_writes_unreported_files_is_refused_and_leaves_nothing(root: Path) -> None:
    model = LeakyModel([1.0, 1.0])
    with pytest.raises(ModelArtifactError, match="reported files"):
        save_model(model, _metadata(model), root)
    assert list(root.iterdir()) == []


def test_metadata_that_contradicts_the_model_is_refused(root: Path) -> None:
    model = StandInModel([1.0, 1.0])
    meta = _metadata(model).model_copy(update={"params": {"bias": 9.0}})
    with pytest.raises(ModelArtifactError, match="params differ"):
        save_model(model, meta, root)
    with pytest.raises(ValidationError, match="strict JSON"):
        ModelMetadata.model_validate({**_metadata(model).model_dump(), "params": {"missing": float("nan")}})


def test_promote_writes_the_champion_pointer(root: Path) -> None:
    _saved(root, "m1")
    _saved(root, "m2")
    assert champion_id(root) is None
    first = promote("m1", root, who="ana", why="best AP on March")
    record = promote("m2", root, who="bo", why="retrained on April")
    on_disk = json.loads((root / CHAMPION_FILE).read_text())
    assert on_disk == record and champion_id(root) == "m2"
    assert (record["model_id"], record["by"], record["why"], record["previous"]) == ("m2", "bo", "retrained on April",
                                                                                     "m1")
    assert first["previous"] is None and record["format_version"] == FORMAT_VERSION and record["promoted_at"]


def test_promoting_a_broken_model_is_refused(root: Path) -> None:
    _saved(root, "m1")
    promote("m1", root)
    (_saved(root, "m2") / "model.json").write_text("{}")
    with pytest.raises(ModelArtifactError, match="sha256 mismatch"):
        promote("m2", root)
    assert champion_id(root) == "m1"


def test_damaged_champion_pointer_is_reported_and_repaired_by_promoting(root: Path) -> None:
    _saved(root, "m1")
    root.joinpath(CHAMPION_FILE).write_text("{oops")
    with pytest.raises(ModelArtifactError, match=r"damaged.*promote a model again"):
        champion_id(root)
    assert promote("m1", root)["previous"] is None and champion_id(root) == "m1"


def test_update_tiers_appends_an_audit_record_and_persists(root: Path) -> None:
    _saved(root)
    new = TierPolicy(high=_choice("precision", 0.95, 0.9), medium=_choice("recall", 0.6, 0.4))
    updated = update_tiers("m1", new, who="ana", why="too many reviews", root=root)
    _, meta = load_model("m1", root)
    assert meta == updated and meta.tiers == new and len(meta.tier_log) == 1
    change = meta.tier_log[0]
    assert (change.old, change.new, change.who, change.why) == (TIERS, new, "ana", "too many reviews")
    update_tiers("m1", TIERS, who="bo", why="back to launch cuts", root=root)
    _, meta = load_model("m1", root)
    assert [c.who for c in meta.tier_log] == ["ana", "bo"] and meta.tiers == TIERS
    card = (root / "m1" / "card.md").read_text()
    assert "too many reviews" in card and "0.9 / 0.4" in card
    with pytest.raises(FraudcoreError, match="who and why"):
        update_tiers("m1", new, who="ana", why="  ", root=root)


def test_list_models_shows_broken_artifacts_with_their_error(root: Path) -> None:
    assert list_models(root) == []
    _saved(root, "good")
    (_saved(root, "bad") / "metadata.json").write_text("not json")
    (root / "stray").mkdir()
    promote("good", root)
    rows = {r["model_id"]: r for r in list_models(root)}
    assert set(rows) == {"good", "bad", "stray"}
    good = rows["good"]
    assert good["error"] is None and good["champion"] and good["algo"] == "standin" and good["split"] == "time"
    _, meta = load_model("good", root)
    assert good["average_precision"] == meta.metrics["test"]["average_precision"] is not None
    assert "not valid JSON" in rows["bad"]["error"] and not rows["bad"]["champion"]
    assert "metadata.json is missing" in rows["stray"]["error"]
    _saved(root, "newer")
    assert [r["model_id"] for r in list_models(root)] == ["newer", "good", "bad", "stray"]


def test_check_input_schema_names_missing_columns(root: Path) -> None:
    _, meta = load_model(_saved(root).name, root)
    everything = ["tx_id", "ts", "amount", "card_id", "terminal_id", "velocity", "channel"]
    check_input_schema(meta, everything)
    with pytest.raises(ModelArtifactError, match=r"lacks: channel \(categorical\), terminal_id \(entity\);"):
        check_input_schema(meta, ["tx_id", "ts", "amount", "card_id", "velocity"])
    with pytest.raises(ModelArtifactError, match=r"is_fraud \(label\)"):
        check_input_schema(meta, everything, with_label=True)


def test_artifacts_env_override_is_honoured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    elsewhere = tmp_path / "elsewhere"
    monkeypatch.setenv("FRAUDCORE_ARTIFACTS", str(elsewhere))
    model = StandInModel([1.0, 2.0])
    assert save_model(model, _metadata(model)) == elsewhere / "m1"
    promote("m1")
    assert champion_id() == "m1" and json.loads((elsewhere / CHAMPION_FILE).read_text())["model_id"] == "m1"
    assert [r["model_id"] for r in list_models()] == ["m1"] and load_model("m1")[1].model_id == "m1"


def test_data_fingerprint_is_stable_and_sensitive(tmp_path: Path) -> None:
    base = data_fingerprint(FRAME)
    assert base == data_fingerprint(FRAME.copy()) and len(base) == 64
    changed = FRAME.copy()
    changed.loc[7, "amount"] += 0.001
    assert data_fingerprint(changed) != base
    assert data_fingerprint(FRAME.astype({"velocity": "float32"})) != base
    assert data_fingerprint(FRAME.iloc[:-1]) != base
    assert data_fingerprint(FRAME[["velocity", "amount"]]) != base
    path = tmp_path / "events.csv"
    FRAME.to_csv(path, index=False)
    assert data_fingerprint(path) == data_fingerprint(load_dataset(path).frame())


@pytest.mark.parametrize("algo", ALGOS)
def test_round_trip_with_the_real_model_families(root: Path, algo: str) -> None:
    rng = np.random.default_rng(3)
    X = pd.DataFrame({"amount": rng.lognormal(3, 1, 600), "velocity": rng.normal(size=600),
                      "channel": rng.choice(["web", "pos", "atm"], 600)})
    y = ((X["velocity"] > 1) | ((X["channel"] == "atm") & (rng.random(600) < 0.3))).astype(int).to_numpy()
    small = {"xgboost": {"n_estimators": 20}, "logreg": {}, "anomaly": {"n_estimators": 20}}[algo]
    model = make_model(algo, **small).fit(X.iloc[:400], y[:400], X.iloc[400:], y[400:])
    folder = save_model(model, _metadata(model, X=X, y=y), root)
    loaded, meta = load_model("m1", root)
    model_files = {p.name for p in folder.iterdir()} - {"metadata.json", "card.md"}
    assert type(loaded) is type(model) and meta.algo == algo and set(meta.files) == model_files != set()
    assert meta.params == json.loads(json.dumps(model.get_params()))
    assert meta.feature_names == ["amount", "velocity", "channel"]
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
