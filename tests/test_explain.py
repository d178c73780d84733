"""Explanations: exact additivity for both families, one event == the same event in a batch, readable reasons."""

from __future__ import annotations

import math
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb
from scipy.special import expit, logit

from fraudcore import explain as explain_module
from fraudcore.errors import FraudcoreError
from fraudcore.explain import Explanation, explain, reason_text, reasons_frame, top_reasons
from fraudcore.features import FeatureConfig, feature_plan, handbook_spec
from fraudcore.models import XGBoostModel, make_model

CONFIG = FeatureConfig(event_id="event_id", event_time="event_time", amount="amount", label="is_fraud",
                       entities=("customer_id", "card_id"), risk_entities=("terminal_id",),
                       windows=("1h", "1d", "30d"), risk_windows=("7d",))
CATEGORIES = ["grocery", "fashion", "electronics", "travel", "gaming"]


def synthetic(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Rows with every CONFIG feature (plausible values), the raw amount and a merchant category; ~6 % fraud."""
    rng = np.random.default_rng(seed)
    hour, dow = rng.integers(0, 24, n), rng.integers(0, 7, n)
    cols: dict[str, np.ndarray] = {"amount": np.round(rng.lognormal(3.5, 0.9, n), 2),
                                   "merchant_category": rng.choice(CATEGORIES, n)}
    for f in feature_plan(CONFIG):
        if f.family in ("hour", "dow", "weekend", "night"):
            cols[f.name] = {"hour": hour, "dow": dow, "weekend": dow >= 5, "night": hour <= 6}[f.family] * 1.0
        elif f.family in ("nb_tx", "nb_tx_delay"):
            cols[f.name] = rng.poisson(3, n) + (1.0 if f.family == "nb_tx" else 0.0)
        elif f.family == "avg_amount":
            cols[f.name] = np.round(rng.lognormal(3.5, 0.5, n), 2)
        elif f.family == "amount_ratio":
            cols[f.name] = cols["amount"] / cols[f"{f.entity}__avg_amount_30d"]
        elif f.family == "secs_since_prev":
            cols[f.name] = np.where(rng.random(n) < 0.1, np.nan, rng.exponential(20_000, n))
        else:
            cols[f.name] = np.round(rng.beta(1, 12, n), 3)
    frame = pd.DataFrame(cols)
    logit_ = (-3.6 + 0.6 * np.log(frame["customer_id__amount_ratio_30d"]) + 1.2 * frame["tx_during_night"]
              + 6.0 * frame["terminal_id__risk_7d"] + np.where(frame["merchant_category"] == "electronics", 1.2, 0))
    y = (rng.random(n) < expit(logit_)).astype(np.int8)
    return frame, y


@pytest.fixture(scope="module")
def windows() -> dict[str, tuple[pd.DataFrame, np.ndarray]]:
    return {"train": synthetic(3000, 1), "valid": synthetic(1000, 2), "test": synthetic(400, 3)}


@pytest.fixture(scope="module")
def models(windows: dict) -> dict[str, object]:
    (X, y), (Xv, yv) = windows["train"], windows["valid"]
    params = {"xgboost": {"n_estimators": 60, "max_depth": 4, "early_stopping_rounds": 10, "n_jobs": 1},
              "logreg": {}, "anomaly": {"n_estimators": 20, "n_jobs": 1}}
    return {algo: make_model(algo, **p).fit(X, y, Xv, yv) for algo, p in params.items()}


@pytest.fixture
def X_test(windows: dict) -> pd.DataFrame:
    X = windows["test"][0].copy()
    X.loc[X.index[:5], "merchant_category"] = "never_seen"  # unknown level → missing, as the model scores it
    X.loc[X.index[5:9], "merchant_category"] = np.nan
    X.index = X.index + 1000  # a non-default index survives into the explanation
    return X


# ---- additivity and agreement with the model ------------------------------------------------------------------

def test_xgboost_contributions_add_up_to_the_models_margin(models: dict, X_test: pd.DataFrame) -> None:
    model = models["xgboost"]
    expl = explain(model, X_test)
    p = model.predict_proba(X_test)
    assert expl.values.shape == (len(X_test), len(model.matrix_.feature_names))
    np.testing.assert_allclose(expl.margin, logit(p), atol=1e-5)
    np.testing.assert_allclose(expl.probability, p, atol=1e-6)
    assert expl.feature_names == model.matrix_.feature_names and list(expl.data.index) == list(X_test.index)


def test_xgboost_matrix_is_built_the_way_the_model_scores_frames(models: dict, X_test: pd.DataFrame) -> None:
    model = models["xgboost"]
    reference = model.booster_.predict(xgb.DMatrix(model.matrix_.frame(X_test), enable_categorical=True),
                                       pred_contribs=True, iteration_range=(0, model.best_iteration_ + 1))
    expl = explain(model, X_test)
    np.testing.assert_allclose(expl.values, reference[:, :-1], atol=1e-6)
    np.testing.assert_allclose(expl.base_values, reference[:, -1], atol=1e-6)


def test_xgboost_explains_the_best_iteration_and_refreshes_its_cache(windows: dict, X_test: pd.DataFrame) -> None:
    (X, y), (Xv, yv) = windows["train"], windows["valid"]
    model = XGBoostModel(n_estimators=30, max_depth=3, early_stopping_rounds=30, n_jobs=1).fit(X, y, Xv, yv)
    first = explain_module._explainer(model)
    assert explain_module._explainer(model) is first  # one explainer per model, reused
    model.best_iteration_ = 4  # as if early stopping had kept five trees
    expl = explain(model, X_test)
    assert explain_module._explainer(model) is not first
    np.testing.assert_allclose(expl.margin, logit(model.predict_proba(X_test)), atol=1e-5)
    full = model.booster_.predict(xgb.DMatrix(model.matrix_.frame(X_test), enable_categorical=True),
                                  output_margin=True)
    assert np.abs(expl.margin - full).max() > 1e-3  # the later trees are not in the explanation


def test_logreg_contributions_add_up_exactly(models: dict, X_test: pd.DataFrame) -> None:
    model = models["logreg"]
    expl = explain(model, X_test)
    np.testing.assert_allclose(expl.margin, logit(model.predict_proba(X_test)), atol=1e-9)
    np.testing.assert_allclose(expl.probability, model.predict_proba(X_test), atol=1e-12)


def test_logreg_maps_one_hot_columns_back_and_centres_on_the_training_design(models: dict, windows: dict) -> None:
    model, (X, _) = models["logreg"], windows["train"]
    expl = explain(model, X)
    assert expl.feature_names == model.matrix_.feature_names  # one column per original feature, not per level
    k = model.matrix_.n_numeric
    np.testing.assert_allclose(expl.values[:, :k].mean(axis=0), 0.0, atol=1e-9)  # standardised means are 0
    w = np.asarray(model.state_["coef"][k:])  # the categorical's one-hot coefficients, in level order
    levels = model.matrix_.categorical["merchant_category"]
    codes = np.array([levels.index(v) for v in X["merchant_category"]])
    share = np.asarray(model.state_["onehot_mean"])  # training share of each level, saved by fit
    np.testing.assert_allclose(expl.values[:, k], w[codes] - w @ share, atol=1e-12)
    np.testing.assert_allclose(expl.values[:, k].mean(), 0.0, atol=1e-9)  # centred on the training design too
    assert expl.base_values[0] == pytest.approx(model.state_["intercept"] + w @ share, abs=1e-12)


def test_logreg_uses_saved_level_shares_when_the_model_has_them(models: dict, windows: dict) -> None:
    model, (X, _) = models["logreg"], windows["train"]
    k, levels = model.matrix_.n_numeric, model.matrix_.categorical["merchant_category"]
    shares = X["merchant_category"].value_counts(normalize=True).reindex(levels).to_numpy()
    patched = make_model("logreg")
    patched.matrix_, patched.state_ = model.matrix_, {**model.state_, "onehot_mean": shares.tolist()}
    expl = explain(patched, X)
    np.testing.assert_allclose(expl.values[:, k].mean(), 0.0, atol=1e-12)  # centred on the training mix
    np.testing.assert_allclose(expl.margin, logit(model.predict_proba(X)), atol=1e-9)


@pytest.mark.parametrize("algo", ["xgboost", "logreg"])
def test_numeric_only_models_and_empty_inputs(algo: str, windows: dict) -> None:
    (X, y), (Xv, yv) = windows["train"], windows["valid"]
    numeric = [c for c in X.columns if c != "merchant_category"]
    params = {"n_estimators": 10, "n_jobs": 1} if algo == "xgboost" else {}
    model = make_model(algo, **params).fit(X[numeric], y, Xv[numeric], yv)
    expl = explain(model, Xv[numeric])
    np.testing.assert_allclose(expl.margin, logit(model.predict_proba(Xv[numeric])), atol=1e-5)
    empty = explain(model, Xv[numeric].iloc[:0])
    assert len(empty) == 0 and empty.values.shape == (0, len(numeric))


def test_anomaly_models_are_refused_with_a_clear_message(models: dict, X_test: pd.DataFrame) -> None:
    with pytest.raises(FraudcoreError, match="explanations are available for xgboost and logreg models"):
        explain(models["anomaly"], X_test)


def test_unfitted_model_is_refused(X_test: pd.DataFrame) -> None:
    with pytest.raises(FraudcoreError, match="not fitted"):
        explain(make_model("xgboost"), X_test)


@pytest.mark.parametrize("algo", ["xgboost", "logreg"])
def test_one_event_equals_the_same_event_in_a_batch(algo: str, models: dict, X_test: pd.DataFrame) -> None:
    model, batch = models[algo], explain(models[algo], X_test)
    for i in (0, 6, 17):  # an unseen category, a missing one, an ordinary row
        for one in (explain(model, X_test.iloc[[i]]), explain(model, X_test.iloc[i].to_dict()), batch[i]):
            assert isinstance(one, Explanation) and len(one) == 1
            np.testing.assert_allclose(one.values[0], batch.values[i], atol=1e-6)
            np.testing.assert_allclose(one.base_values, batch.base_values[i], atol=1e-6)
            pd.testing.assert_frame_equal(one.data.reset_index(drop=True), batch.data.iloc[[i]].reset_index(drop=True))


def test_data_holds_model_inputs_with_category_labels(models: dict, X_test: pd.DataFrame) -> None:
    expl = explain(models["xgboost"], X_test)
    assert expl.data["merchant_category"].isna().iloc[:9].all()  # unseen and missing read as unknown
    assert set(expl.data["merchant_category"].dropna()) <= set(CATEGORIES)
    np.testing.assert_array_equal(expl.data["amount"].to_numpy(), X_test["amount"].to_numpy())


def test_row_selection_keeps_the_type(models: dict, X_test: pd.DataFrame) -> None:
    expl = explain(models["logreg"], X_test)
    mask = expl.probability > np.median(expl.probability)
    for part, n in ((expl[3], 1), (expl[-1], 1), (expl[10:20], 10), (expl[mask], int(mask.sum())),
                    (expl[[4, 2]], 2)):
        assert isinstance(part, Explanation) and len(part) == n == len(part.data) == len(part.values)
    np.testing.assert_allclose(expl[[4, 2]].margin, expl.margin[[4, 2]])
    assert expl[-1].data.index[0] == X_test.index[-1]
    with pytest.raises(IndexError):
        expl[len(expl)]
    with pytest.raises(FraudcoreError, match="values"):
        Explanation(np.zeros((2, 3)), np.zeros(2), X_test.iloc[:3, :3], list(X_test.columns[:3]))


# ---- reasons ---------------------------------------------------------------------------------------------------

ROW = {"amount": 412.5, "merchant_category": "electronics", "tx_hour": 3.0, "tx_dow": 5.0, "tx_during_weekend": 1.0,
       "tx_during_night": 1.0, "customer_id__amount_ratio_30d": 6.2, "customer_id__avg_amount_30d": 66.53,
       "card_id__nb_tx_1h": 7.0, "card_id__avg_amount_1d": 230.1, "card_id__secs_since_prev": 40.0,
       "customer_id__secs_since_prev": np.nan, "terminal_id__risk_7d": 0.43, "terminal_id__nb_tx_delay_7d": 120.0}


@pytest.mark.parametrize("config", [CONFIG, CONFIG.to_dict(), None], ids=["config", "dict", "names-only"])
@pytest.mark.parametrize(("feature", "expected"), [
    ("customer_id__amount_ratio_30d", "amount 412.50 is 6.2× this customer_id's 30-day average"),
    ("card_id__nb_tx_1h", "card_id made 7 transactions in the last 1h"),
    ("card_id__avg_amount_1d", "card_id's average amount over the last 1d is 230.10"),
    ("card_id__secs_since_prev", "only 40 s since this card_id's previous transaction"),
    ("customer_id__secs_since_prev", "no earlier transaction by this customer_id in 30d"),
    ("terminal_id__nb_tx_delay_7d", "terminal_id had 120 transactions in the 7d window"),
    ("tx_hour", "at 03:00 UTC, during the night"),
    ("tx_during_night", "at 03:00 UTC, during the night"),
    ("tx_during_weekend", "on a Saturday, a weekend day"),
    ("tx_dow", "on a Saturday"),
    ("amount", "amount is 412.50"),
    ("merchant_category", "merchant_category is electronics"),
])
def test_every_feature_family_reads_as_a_sentence(feature: str, expected: str, config: object) -> None:
    assert reason_text(feature, ROW[feature], ROW, config).startswith(expected)


def test_risk_sentence_names_share_count_and_label_delay() -> None:
    text = reason_text("terminal_id__risk_7d", 0.43, ROW, CONFIG)
    assert text == ("terminal_id had 43% fraud (52 of 120 transactions) in the 7d window ending 7 days ago "
                    "(labels known then)")
    assert "no transactions" in reason_text("terminal_id__risk_7d", 0.0, {**ROW, "terminal_id__nb_tx_delay_7d": 0.0},
                                            CONFIG)
    assert "before the label delay" in reason_text("terminal_id__risk_7d", 0.43, ROW, None)  # delay unknown


@pytest.mark.parametrize(("feature", "value", "expected"), [
    ("card_id__secs_since_prev", 5400.0, "1.5 h since this card_id's previous transaction"),
    ("card_id__secs_since_prev", 720.0, "only 12 min since"),
    ("card_id__secs_since_prev", 3 * 86400.0, "3.0 d since"),
    ("card_id__nb_tx_1h", 1.0, "card_id made 1 transaction in the last 1h"),
    ("card_id__avg_amount_1d", np.nan, "card_id has no known amounts in the last 1d"),
    ("customer_id__amount_ratio_30d", 0.25, "amount 412.50 is 0.25×"),
    ("customer_id__amount_ratio_30d", None, "no amount to compare with this customer_id's 30-day average"),
    ("terminal_id__risk_7d", 0.004, "terminal_id had 0.4% fraud"),
    ("tx_hour", 14.0, "at 14:00 UTC"),
    ("tx_during_night", 0.0, "at 03:00 UTC, outside the night hours"),
    ("merchant_category", None, "merchant_category is unknown (missing or not seen in training)"),
    ("amount", 1250.0, "amount is 1,250.00"),
    ("mystery_score", 3.5, "mystery_score = 3.5"),
    ("mystery_score", np.nan, "mystery_score is missing"),
    ("mystery_score", 105_324.36, "mystery_score = 105,324.36"),  # not 1.053e+05
    ("mystery_score", 65_255.0, "mystery_score = 65,255"),
    ("mystery_score", 0.000123, "mystery_score = 0.000123"),
])
def test_numbers_and_missing_values_read_naturally(feature: str, value: object, expected: str) -> None:
    assert reason_text(feature, value, ROW, CONFIG, categorical=feature == "merchant_category").startswith(expected)


def test_an_event_without_the_entity_is_not_described_as_new_history() -> None:
    # A POS payment has no device: its device counts are missing (a present device's include the event itself).
    row = {**ROW, "card_id__nb_tx_1h": np.nan, "card_id__avg_amount_1d": np.nan, "card_id__secs_since_prev": np.nan}
    for feature in ("card_id__nb_tx_1h", "card_id__avg_amount_1d", "card_id__secs_since_prev"):
        assert reason_text(feature, row[feature], row, CONFIG) == "the event has no card_id (nothing to compare with)"
    gone = {**ROW, "terminal_id__nb_tx_delay_7d": np.nan}
    assert reason_text("terminal_id__risk_7d", np.nan, gone, CONFIG).startswith("the event has no terminal_id")
    new = {**ROW, "card_id__avg_amount_1d": np.nan}  # the card is there (its count is): a first-seen card
    assert reason_text("card_id__avg_amount_1d", np.nan, new, CONFIG) == "card_id has no known amounts in the last 1d"
    assert reason_text("card_id__secs_since_prev", np.nan, new, CONFIG).startswith("no earlier transaction by this")


def test_amount_comes_from_the_average_when_the_raw_amount_is_not_a_feature() -> None:
    row = {k: v for k, v in ROW.items() if k != "amount"}
    assert reason_text("customer_id__amount_ratio_30d", 6.2, row, None) == \
        "amount 412.49 is 6.2× this customer_id's 30-day average"  # 6.2 × 66.53


HANDBOOK = FeatureConfig.from_spec(handbook_spec(), "handbook")
HB_ROW = {"TX_AMOUNT": 1250.0, "TX_DURING_WEEKEND": 0.0, "TX_DURING_NIGHT": 1.0,
          "CUSTOMER_ID_NB_TX_1DAY_WINDOW": 4.0, "CUSTOMER_ID_AVG_AMOUNT_1DAY_WINDOW": 52.0,
          "CUSTOMER_ID_NB_TX_7DAY_WINDOW": 9.0, "CUSTOMER_ID_AVG_AMOUNT_7DAY_WINDOW": 48.3,
          "TERMINAL_ID_NB_TX_7DAY_WINDOW": 40.0, "TERMINAL_ID_RISK_7DAY_WINDOW": 0.25}


@pytest.mark.parametrize("config", [HANDBOOK, None], ids=["config", "names-only"])
@pytest.mark.parametrize(("feature", "expected"), [
    ("CUSTOMER_ID_NB_TX_1DAY_WINDOW", "CUSTOMER_ID made 4 transactions in the last 1d"),
    ("CUSTOMER_ID_AVG_AMOUNT_1DAY_WINDOW", "CUSTOMER_ID's average amount over the last 1d is 52.00"),
    ("TERMINAL_ID_NB_TX_7DAY_WINDOW", "TERMINAL_ID had 40 transactions in the 7d window"),
    ("TERMINAL_ID_RISK_7DAY_WINDOW", "TERMINAL_ID had 25% fraud (10 of 40 transactions) in the 7d window"),
    ("TX_DURING_NIGHT", "during the night (00:00–06:59 UTC)"),
    ("TX_DURING_WEEKEND", "on a weekday"),
    ("TX_AMOUNT", "TX_AMOUNT is 1,250.00"),
])
def test_handbook_names_get_sentences(feature: str, expected: str, config: object) -> None:
    assert reason_text(feature, HB_ROW[feature], HB_ROW, config).startswith(expected)


def test_every_planned_feature_has_its_own_sentence() -> None:
    for config in (CONFIG, HANDBOOK):
        for f in feature_plan(config):
            text = reason_text(f.name, 1.0, {f.name: 1.0}, config)
            assert " = " not in text and f.name not in text, (f.name, text)


def _hand_made(values: list[list[float]]) -> Explanation:
    v = np.asarray(values, dtype=float)
    names = ["card_id__nb_tx_1h", "amount", "tx_hour", "merchant_category", "mystery_score"]
    data = pd.DataFrame({"card_id__nb_tx_1h": [7.0] * len(v), "amount": [412.5] * len(v),
                         "tx_hour": [3.0] * len(v), "merchant_category": pd.Categorical(["gaming"] * len(v)),
                         "mystery_score": [np.nan] * len(v)}, index=[f"e{i}" for i in range(len(v))])
    return Explanation(v, np.full(len(v), -3.0), data, names)


def test_top_reasons_rank_risk_raising_first_then_fill_with_the_strongest_lowering() -> None:
    expl = _hand_made([[0.5, -2.0, 1.0, 0.0, -0.1], [-0.3, -0.2, -0.9, 0.0, 0.0], [0.2, 0.4, 0.3, 0.1, 0.0]])
    first, second, third = top_reasons(expl, k=3)
    assert [r.feature for r in first] == ["tx_hour", "card_id__nb_tx_1h", "amount"]
    assert [r.direction for r in first] == ["raises", "raises", "lowers"]
    assert [r.feature for r in second] == ["tx_hour", "card_id__nb_tx_1h", "amount"]  # |lowering| order
    assert [r.feature for r in third] == ["amount", "tx_hour", "card_id__nb_tx_1h"]  # never a lowering one
    assert [len(r) for r in top_reasons(expl, k=1)] == [1, 1, 1]
    assert [r.feature for r in top_reasons(expl, k=5)[1]] == ["tx_hour", "card_id__nb_tx_1h", "amount"]  # no zeros
    reason = first[0]
    margin = -3.0 + sum([0.5, -2.0, 1.0, 0.0, -0.1])
    assert reason.delta_probability == pytest.approx(expit(margin) - expit(margin - 1.0))
    assert reason.contribution == 1.0 and reason.value == 3.0 and reason.text == "at 03:00 UTC, during the night"
    with pytest.raises(FraudcoreError, match="at least 1"):
        top_reasons(expl, k=0)


def test_top_reasons_read_categoricals_and_missing_values() -> None:
    expl = _hand_made([[0.0, 0.0, 0.0, 0.8, 0.5]])
    reasons = top_reasons(expl, k=2)[0]
    assert [r.text for r in reasons] == ["merchant_category is gaming", "mystery_score is missing"]
    assert reasons[1].value is None


def test_reasons_frame_has_k_text_columns_and_marks_lowering_reasons() -> None:
    expl = _hand_made([[0.5, -2.0, 1.0, 0.0, -0.1], [0.0, 0.0, 0.0, 0.0, 0.0]])
    frame = reasons_frame(expl, k=3)
    assert list(frame.columns) == ["reason_1", "reason_2", "reason_3"] and list(frame.index) == ["e0", "e1"]
    assert frame.loc["e0"].tolist() == ["at 03:00 UTC, during the night", "card_id made 7 transactions in the last 1h",
                                        "amount is 412.50 (lowers risk)"]
    assert frame.loc["e1"].tolist() == ["", "", ""]


def test_feature_config_must_be_a_config_its_dict_or_none() -> None:
    expl = _hand_made([[1.0, 0.0, 0.0, 0.0, 0.0]])
    with pytest.raises(FraudcoreError, match="to_dict"):
        top_reasons(expl, feature_config={"entities": ["x"]})
    with pytest.raises(FraudcoreError, match="FeatureConfig"):
        top_reasons(expl, feature_config=42)


def test_model_reasons_name_the_signal_that_drives_the_label(models: dict, X_test: pd.DataFrame) -> None:
    expl = explain(models["xgboost"], X_test)
    top = np.argsort(-expl.margin)[:20]
    reasons = top_reasons(expl[top], k=3, feature_config=CONFIG.to_dict())
    named = {r.feature for rs in reasons for r in rs}
    assert named & {"terminal_id__risk_7d", "customer_id__amount_ratio_30d", "tx_during_night", "tx_hour",
                    "merchant_category"}
    assert all(" = " not in r.text for rs in reasons for r in rs)


# ---- the simulator end to end ----------------------------------------------------------------------------------

def test_simulated_features_explain_additively_with_readable_reasons() -> None:
    from fraudcore.features_batch import build_features_frame
    from fraudcore.simulate import generate

    config = FeatureConfig(event_id="event_id", event_time="event_time", amount="amount", label="is_fraud",
                           entities=("customer_id", "terminal_id"), windows=("1h", "1d", "7d"), risk_windows=("7d",),
                           label_delay=timedelta(days=1))
    events = build_features_frame(generate(rows=6000), config)
    names = ["amount", "merchant_category", "channel", *(f.name for f in feature_plan(config))]
    train, valid, test = events.iloc[:3500], events.iloc[3500:4500], events.iloc[4500:]
    model = XGBoostModel(n_estimators=40, max_depth=4, early_stopping_rounds=40, n_jobs=1)
    model.fit(train[names], train["is_fraud"], valid[names], valid["is_fraud"])
    expl = explain(model, test[names])
    np.testing.assert_allclose(expl.margin, logit(model.predict_proba(test[names])), atol=1e-5)
    frame = reasons_frame(expl, k=3, feature_config=config.to_dict())
    texts = [t for t in frame.to_numpy().ravel() if t]
    assert len(texts) > 2 * len(test)
    assert not [t for t in texts if " = " in t]  # every feature read through its definition
    words = {w.removesuffix("'s") for t in texts for w in t.split()}
    assert {"customer_id", "terminal_id", "merchant_category"} <= words  # entities and raw columns are named
    assert all(not math.isnan(r.contribution) for rs in top_reasons(expl[:50], 3, config) for r in rs)
