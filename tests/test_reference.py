"""Reference statistics: hand-computed bins, PSI and KS; saved and hashed with every trained model."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pandas as pd
import pytest

from fraudcore.errors import FraudcoreError, ModelArtifactError
from fraudcore.reference import (
    MISSING,
    OTHER,
    PSI_EPSILON,
    REFERENCE_FILE,
    ModelReference,
    bin_counts,
    build_reference,
    categorical_reference,
    ks,
    load_reference,
    numeric_reference,
    psi,
)
from fraudcore.registry import load_metadata, load_model, save_model


def test_numeric_bins_and_psi_by_hand():
    ref = numeric_reference(np.arange(1, 11), n_bins=2)  # median (inverted cdf) of 1..10 is 5
    assert ref.edges == [5.0]
    assert ref.shares == [0.5, 0.5, 0.0]
    assert ref.labels == ["<= 5", "> 5", MISSING]
    assert ref.mean == 5.5 and ref.missing_share == 0.0
    live = [1, 2, 3, 4, 5, 6, 7, 8, None, float("nan")]
    shares = ref.live_shares(live)
    assert shares.tolist() == [0.5, 0.3, 0.2]
    expected = (0.5 - 0.5) * math.log(1) + (0.3 - 0.5) * math.log(0.3 / 0.5) + \
        (0.2 - PSI_EPSILON) * math.log(0.2 / PSI_EPSILON)
    assert psi(ref.shares, shares) == pytest.approx(expected, rel=1e-12)
    assert expected == pytest.approx(1.6215, abs=1e-4)


def test_right_closed_bins_and_ties():
    ref = numeric_reference([0, 0, 0, 0, 0, 0, 1, 1, 2, 9], n_bins=4)  # quartiles 0, 0, 1 -> edges 0, 1
    assert ref.edges == [0.0, 1.0]
    assert bin_counts(ref, [0, 0.5, 1, 1.0001, -3, None]).tolist() == [2, 2, 1, 1]  # (<=0, (0,1], >1, missing)
    assert ref.shares == [0.6, 0.2, 0.2, 0.0]


def test_categorical_bins_and_psi_by_hand():
    ref = categorical_reference(["a", "a", "b", "c", None], top=2)  # b and c tie: name order keeps b
    assert ref.categories == ["a", "b"]
    assert ref.labels == ["a", "b", OTHER, MISSING]
    assert ref.shares == [0.4, 0.2, 0.2, 0.2]
    shares = ref.live_shares(["c", "c", "d", "a"])
    assert shares.tolist() == [0.25, 0.0, 0.75, 0.0]
    e = PSI_EPSILON
    expected = (0.25 - 0.4) * math.log(0.25 / 0.4) + (e - 0.2) * math.log(e / 0.2) + \
        (0.75 - 0.2) * math.log(0.75 / 0.2) + (e - 0.2) * math.log(e / 0.2)
    assert psi(ref.shares, shares) == pytest.approx(expected, rel=1e-12)


def test_integer_categories_match_their_text():
    ref = categorical_reference([7, 7, 8])
    assert ref.live_shares(["7", 8.0, None]).tolist() == pytest.approx([1 / 3, 1 / 3, 0, 1 / 3])


def test_psi_is_zero_for_identical_shares_and_refuses_other_bins():
    assert psi([0.2, 0.8, 0.0], [0.2, 0.8, 0.0]) == 0.0
    with pytest.raises(FraudcoreError, match="same bins"):
        psi([0.5, 0.5], [0.2, 0.3, 0.5])


def test_ks_against_the_sketch_by_hand():
    ref = numeric_reference(np.arange(1000))
    # quantiles at (i + 0.5) / 100, inverted cdf: the smallest value whose ECDF reaches 0.005 is the 5th, 4
    assert ref.sketch[:3] == [4.0, 14.0, 24.0] and ref.sketch[-1] == 994.0
    same, _ = ks(ref, np.arange(1000))
    assert same <= 0.01
    # live 500..1499: at x = 994 the sketch's ECDF is 1 and the live ECDF is 495/1000
    stat, pvalue = ks(ref, np.arange(1000) + 500)
    assert stat == pytest.approx(0.505)
    assert pvalue < 1e-10
    assert ks(ref, [None, None]) == (None, None)
    assert ks(categorical_reference(["a"]), ["a"]) == (None, None)


def test_reference_round_trips_as_small_json():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({f"x{i}": rng.normal(size=5000) for i in range(70)})
    frame["country"] = rng.choice(["BE", "NL", "FR"], size=5000)
    ref = build_reference(frame, rng.uniform(size=3000), categorical=["country"])
    text = ref.to_json()
    assert len(text) < 90_000
    back = ModelReference.from_json(text)
    assert back == ref
    assert back.features["country"].kind == "categorical" and back.features["x3"].kind == "numeric"
    assert back.score.n == 3000
    with pytest.raises(ModelArtifactError, match="version"):
        ModelReference.from_json(json.dumps({**json.loads(text), "version": 99}))


def test_training_saves_a_hashed_reference(trained, tmp_path):
    meta = load_metadata(trained.model_id, trained.root)
    assert REFERENCE_FILE in meta.files
    ref = load_reference(trained.model_id, trained.root)
    assert list(ref.features) == meta.feature_names
    assert ref.rows == meta.split["train"]["rows"]
    assert meta.split["final_fit"]["rows"] == "train"  # not refitted: both windows are out of sample
    assert ref.score.n == meta.split["valid"]["rows"] + meta.split["test"]["rows"]
    assert ref.features["merchant_category"].kind == "categorical"
    assert abs(sum(ref.features["amount"].shares) - 1) < 1e-6
    copy = tmp_path / "art"
    shutil.copytree(trained.root / trained.model_id, copy / trained.model_id)
    (copy / trained.model_id / REFERENCE_FILE).write_text(ref.to_json().replace('"rows":', '"rows": '))
    with pytest.raises(ModelArtifactError, match="sha256 mismatch"):
        load_reference(trained.model_id, copy)


def test_a_model_without_reference_says_retrain(trained, tmp_path):
    model, meta = load_model(trained.model_id, trained.root)
    save_model(model, meta.model_copy(update={"files": {}, "params": {}}), root=tmp_path)
    with pytest.raises(ModelArtifactError, match=r"no reference statistics.*retrain"):
        load_reference(trained.model_id, tmp_path)
    with pytest.raises(ModelArtifactError, match="clashes"):
        save_model(model, meta.model_copy(update={"model_id": "other", "files": {}, "params": {}}), root=tmp_path,
                   extra_files={"model.ubj": "x"})
