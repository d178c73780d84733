"""Monitoring over a real DuckDB store: drift (hand-computed and after injected shift), alert volumes, realized
precision, label maturity, threshold replay and shadow agreement (hand-computed), and the shadow setting."""

from __future__ import annotations

import json
import math
import shutil
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from fraudcore.dataset import open_dataset
from fraudcore.errors import FraudcoreError, ModelArtifactError
from fraudcore.inputs import model_inputs
from fraudcore.monitor import (
    alert_volumes,
    distribution,
    feature_drift,
    label_maturity,
    maturity_summary,
    realized_precision,
    score_drift,
)
from fraudcore.monitor_compare import shadow_agreement, threshold_replay
from fraudcore.reference import PSI_EPSILON, ModelReference, categorical_reference, numeric_reference
from fraudcore.registry import promote
from fraudcore.shadow import clear_shadow, get_shadow, set_shadow, shadow_log
from fraudcore.store import Store

DAY0 = datetime(2025, 3, 1)


@pytest.fixture
def store(isolated_paths):
    with Store.open() as opened:
        yield opened


def write(store: Store, rows: list[dict], model_id: str = "m", shadow: bool = False) -> None:
    """Events (id, time, amount, label) and one score row each: score, tier, features, reasons."""
    events = pd.DataFrame({"event_id": [r["id"] for r in rows], "event_time": [r["t"] for r in rows],
                           "amount": [r.get("amount", 10.0) for r in rows],
                           "label": pd.array([r.get("label") for r in rows], dtype="Int64")})
    scores = pd.DataFrame({"event_id": events["event_id"], "model_id": model_id,
                           "score": [r["score"] for r in rows], "tier": [r.get("tier", "low") for r in rows],
                           "reasons": [r.get("reasons") for r in rows], "features": [r.get("features") for r in rows],
                           "shadow": shadow})
    store.write_batch(events, scores)


def shadow_scores(store: Store, rows: list[tuple[str, float, str]], model_id: str) -> None:
    """Extra shadow score rows for events already stored (the ingest writes them in the same batch)."""
    with store.transaction() as con:
        for event_id, score, tier in rows:
            con.execute("INSERT INTO scores (event_id, model_id, score, tier, shadow, scored_at) VALUES "
                        "(?, ?, ?, ?, true, ?)", [event_id, model_id, score, tier, DAY0])


def hand_reference() -> ModelReference:
    return ModelReference(rows=10, features={"x": numeric_reference(np.arange(1, 11), n_bins=2),
                                             "c": categorical_reference(["a", "a", "b", "b"])},
                          score=numeric_reference([0.1, 0.2, 0.3, 0.4], n_bins=2))


def test_feature_drift_by_hand(store):
    xs = [1, 2, 3, 4, 5, 6, 7, 8, None, None]
    cs = ["a", "a", "a", "a", "a", "b", "b", "b", "z", None]
    rows = [{"id": f"e{i}", "t": DAY0 + timedelta(hours=i), "score": 0.1, "features": {"x": x, "c": c}}
            for i, (x, c) in enumerate(zip(xs, cs, strict=True))]
    # two alerts: c raises risk in both (|0.8| and |0.4|); x lowers it in one (|0.2|)
    rows[0].update(tier="high", reasons=[{"feature": "c", "contribution": 0.8}, {"feature": "x", "contribution": -0.2}])
    rows[1].update(tier="medium", reasons=[{"feature": "c", "contribution": 0.4}])
    write(store, rows)
    table = feature_drift(store, "m", reference=hand_reference())
    assert table["feature"].tolist() == ["c", "x"]  # c drives the alerts
    c, x = table.set_index("feature").loc["c"], table.set_index("feature").loc["x"]
    assert c["rank"] == 1 and x["rank"] == 2
    assert c["alert_share"] == 1.0 and c["alert_influence"] == pytest.approx((0.8 + 0.4) / 2)
    assert x["alert_share"] == 0.0 and x["alert_influence"] == pytest.approx(0.2 / 2)
    # x: reference bins (<=5, >5, missing) = .5 .5 0; live = .5 .3 .2
    e = PSI_EPSILON
    assert x["psi"] == pytest.approx(-0.2 * math.log(0.3 / 0.5) + (0.2 - e) * math.log(0.2 / e))
    assert x["level"] == "major" and x["n_live"] == 10 and x["live_missing"] == pytest.approx(0.2)
    assert x["live_mean"] == pytest.approx(4.5) and x["ref_mean"] == pytest.approx(5.5)
    # c: reference (a, b, other, missing) = .5 .5 0 0; live = .5 .3 .1 .1
    assert c["psi"] == pytest.approx(-0.2 * math.log(0.3 / 0.5) + 2 * (0.1 - e) * math.log(0.1 / e))
    assert math.isnan(c["ks"])
    from scipy.stats import ks_2samp

    assert x["ks"] == pytest.approx(ks_2samp(hand_reference().features["x"].sketch, [1, 2, 3, 4, 5, 6, 7, 8]).statistic)
    bins = distribution(store, "m", "x", reference=hand_reference())
    assert bins["bin"].tolist() == ["<= 5", "> 5", "(missing)"]
    assert bins["live"].tolist() == pytest.approx([0.5, 0.3, 0.2])
    with pytest.raises(FraudcoreError, match="no input"):
        distribution(store, "m", "nope", reference=hand_reference())


def test_score_drift_and_window(store):
    write(store, [{"id": f"s{i}", "t": DAY0 + timedelta(days=i), "score": s} for i, s in enumerate([0.1, 0.2, 0.9])])
    ref = hand_reference()  # score edges [0.2]: (<=0.2, >0.2, missing) = .5 .5 0
    row = score_drift(store, "m", reference=ref).iloc[0]
    third = 1 / 3
    assert row["psi"] == pytest.approx((2 * third - 0.5) * math.log(2 * third / 0.5) +
                                       (third - 0.5) * math.log(third / 0.5))
    narrow = score_drift(store, "m", since=DAY0 + timedelta(days=2), reference=ref).iloc[0]
    assert narrow["n_live"] == 1 and narrow["live_mean"] == pytest.approx(0.9)
    with pytest.raises(FraudcoreError, match="after it ends"):
        score_drift(store, "m", since=DAY0 + timedelta(days=5), until=DAY0, reference=ref)


def test_alert_volumes_per_tier_per_day(store):
    tiers = [(0, "high"), (0, "medium"), (0, "medium"), (0, "low"), (2, "high")]
    write(store, [{"id": f"v{i}", "t": DAY0 + timedelta(days=d, hours=i), "score": 0.5, "tier": t}
                  for i, (d, t) in enumerate(tiers)])
    write(store, [{"id": "sh", "t": DAY0, "score": 0.9, "tier": "high"}], model_id="c", shadow=True)
    volumes = alert_volumes(store, days=4)
    assert len(volumes) == 4 * 3
    counts = {(str(d)[:10], t): n for d, t, n in volumes.itertuples(index=False)}
    assert counts[("2025-02-28", "high")] == 0
    assert counts[("2025-03-01", "high")] == 1  # the shadow high is not an alert
    assert counts[("2025-03-01", "medium")] == 2 and counts[("2025-03-01", "low")] == 1
    assert counts[("2025-03-02", "medium")] == 0 and counts[("2025-03-03", "high")] == 1
    with pytest.raises(FraudcoreError, match="at least 1"):
        alert_volumes(store, days=0)


def test_realized_precision_by_hand(store):
    rows = [("h1", "high", 1), ("h2", "high", 0), ("h3", "high", None), ("m1", "medium", 1), ("l1", "low", 1)]
    write(store, [{"id": i, "t": DAY0, "score": 0.5, "tier": t, "label": y} for i, t, y in rows])
    table = realized_precision(store).set_index("tier")
    assert table.loc["high", ["cases", "decided", "confirmed"]].tolist() == [3, 2, 1]
    assert table.loc["high", "precision"] == 0.5
    assert table.loc["high", "ci_low"] == pytest.approx(0.0945, abs=1e-4)  # Wilson 95 % for 1 of 2
    assert table.loc["high", "ci_high"] == pytest.approx(0.9055, abs=1e-4)
    assert table.loc["medium", "precision"] == 1.0
    assert table.loc["all", ["cases", "decided", "confirmed"]].tolist() == [4, 3, 2]  # the low event is no case


def test_label_maturity_by_hand(store):
    # 4 events on day 0, 2 on day 8, 2 on day 10 (the newest, "now"); with a 7-day delay the cutoff is day 3
    spec = [(0, 1), (0, 0), (0, None), (0, None), (8, 0), (8, None), (10, None), (10, None)]
    write(store, [{"id": f"l{i}", "t": DAY0 + timedelta(days=d), "score": 0.1, "label": y}
                  for i, (d, y) in enumerate(spec)])
    table = label_maturity(store, label_delay_days=7)
    assert table["events"].tolist() == [4, 2, 2]
    assert table["mature"].tolist() == [4, 0, 0]
    assert table["labelled_share"].tolist() == pytest.approx([0.5, 0.5, 0.0])
    summary = maturity_summary(store, label_delay_days=7)
    assert summary["mature_share"] == 0.5 and summary["labelled_share_of_mature"] == 0.5
    assert summary["cutoff"] == DAY0 + timedelta(days=3)
    assert maturity_summary(store, label_delay_days=1)["mature_share"] == pytest.approx(6 / 8)


def test_threshold_replay_by_hand(store):
    data = [("r1", 0, 0.95, 1), ("r2", 0, 0.85, 0), ("r3", 0, 0.6, 1), ("r4", 1, 0.45, 1), ("r5", 1, 0.35, 0),
            ("r6", 1, 0.1, None)]
    write(store, [{"id": i, "t": DAY0 + timedelta(days=d), "score": s, "label": y} for i, d, s, y in data])
    replay = threshold_replay(store, "m", medium=0.4, high=0.9, current=(0.5, 0.8))
    summary = replay.summary.set_index("scenario")
    # current (0.5, 0.8): high r1 r2, medium r3, low r4 r5 r6 -> caught r1 r3, missed r4, false alarm r2
    assert summary.loc["current", ["high", "medium", "low", "alerts"]].tolist() == [2, 1, 3, 3]
    assert summary.loc["current", ["caught", "missed", "false_alarms"]].tolist() == [2, 1, 1]
    # proposed (0.4, 0.9): high r1, medium r2 r3 r4, low r5 r6 -> caught r1 r3 r4, missed none, false alarm r2
    assert summary.loc["proposed", ["high", "medium", "low", "alerts"]].tolist() == [1, 3, 2, 4]
    assert summary.loc["proposed", ["caught", "missed", "false_alarms"]].tolist() == [3, 0, 1]
    assert summary.loc["proposed", "precision"] == 0.75 and summary.loc["proposed", "alerts_per_day"] == 2.0
    assert summary.loc["current", ["medium_cut", "high_cut"]].tolist() == [0.5, 0.8]
    assert summary.loc["proposed", ["medium_cut", "high_cut"]].tolist() == [0.4, 0.9]
    daily = replay.daily.set_index(["scenario", "tier"])
    day1 = daily[daily["day"].astype(str).str.startswith("2025-03-02")]
    assert day1.loc[("proposed", "medium"), "events"] == 1 and day1.loc[("current", "medium"), "events"] == 0
    assert replay.moves.loc["high", "medium"] == 1 and replay.moves.loc["low", "medium"] == 1
    assert int(replay.moves.to_numpy().sum()) == 6
    with pytest.raises(FraudcoreError, match="must be >="):
        threshold_replay(store, "m", medium=0.9, high=0.5, current=(0.5, 0.8))


def test_shadow_agreement_by_hand(store):
    champ = [("a1", "high", 1), ("a2", "medium", 0), ("a3", "low", 1), ("a4", "low", None)]
    write(store, [{"id": i, "t": DAY0, "score": 0.5, "tier": t, "label": y} for i, t, y in champ], model_id="champ")
    shadow_scores(store, [("a1", 0.9, "high"), ("a2", 0.1, "low"), ("a3", 0.6, "medium"), ("a4", 0.1, "low")], "chal")
    result = shadow_agreement(store, "champ", "chal")
    assert result.events == 4
    assert result.crosstab.loc["high", "high"] == 1 and result.crosstab.loc["medium", "low"] == 1
    assert result.crosstab.loc["low", "medium"] == 1 and result.crosstab.loc["low", "low"] == 1
    assert int(result.crosstab.to_numpy().sum()) == 4
    assert result.agreement == 0.5 and result.alert_agreement == 0.5
    alerts = result.alerts.set_index("role")
    assert alerts.loc["champion", ["alerts", "only_this_model", "confirmed_frauds"]].tolist() == [2, 1, 1]
    assert alerts.loc["challenger", ["alerts", "only_this_model", "confirmed_frauds"]].tolist() == [2, 1, 2]
    assert store.stats()["cases"] == 2  # shadow scores opened no case


def test_shadow_setting(trained, tmp_path):
    root = tmp_path / "art"
    shutil.copytree(trained.root / trained.model_id, root / trained.model_id)
    assert get_shadow(root) is None
    record = set_shadow(trained.model_id, who="ana", why="try it", root=root)
    assert get_shadow(root) == record and record.set_by == "ana"
    assert json.loads((root / "shadow.json").read_text())["model_id"] == trained.model_id
    with pytest.raises(ModelArtifactError):
        set_shadow("no-such-model", who="ana", root=root)
    with pytest.raises(FraudcoreError, match="who"):
        set_shadow(trained.model_id, who=" ", root=root)
    promote(trained.model_id, root=root, who="ana", why="shadow test")
    assert get_shadow(root) is None  # a shadow that became champion stops shadowing
    with pytest.raises(FraudcoreError, match="champion already"):
        set_shadow(trained.model_id, who="ana", root=root)
    assert clear_shadow("bob", "done", root=root) == trained.model_id
    assert clear_shadow("bob", root=root) is None
    assert [(e["action"], e["who"]) for e in shadow_log(root)] == [("set", "ana"), ("clear", "bob")]


def test_shadow_log_and_damage(tmp_path):
    (tmp_path / "shadow.json").write_text("{not json")
    with pytest.raises(ModelArtifactError, match="damaged"):
        get_shadow(tmp_path)
    assert clear_shadow("ops", "repair", root=tmp_path) is None
    assert [e["action"] for e in shadow_log(tmp_path)] == ["clear"] and shadow_log(tmp_path)[0]["who"] == "ops"


@pytest.fixture(scope="module")
def batch_inputs(trained, scorer) -> pd.DataFrame:
    """The training events with the model's batch features (as the live path computes them, tested elsewhere)."""
    opened = open_dataset(trained.parquet, spec=scorer.spec)
    return model_inputs(opened, "none", feature_config=scorer.feature_config).frame


def _scored_rows(inputs: pd.DataFrame, scorer, amount_factor: float = 1.0, prefix: str = "") -> list[dict]:
    """Rows of model inputs as stored live traffic: features, score, tier and (for alerts) reasons."""
    X = inputs[scorer.feature_names].assign(amount=lambda f: f["amount"] * amount_factor)
    scored = scorer.score_inputs(X)
    records = X.to_dict("records")
    alerts = np.flatnonzero(scored["tier"].to_numpy() != "low")
    reasons = dict(zip(alerts.tolist(), scorer.reasons([records[i] for i in alerts], 3), strict=True))
    return [{"id": f"{prefix}{e}", "t": t, "amount": r["amount"], "score": s, "tier": tier, "features": r,
             "reasons": reasons.get(i)}
            for i, (e, t, r, s, tier) in enumerate(zip(inputs["event_id"], inputs["event_time"], records,
                                                       scored["score"], scored["tier"], strict=True))]


def test_drift_grows_after_injecting_shifted_amounts(trained, scorer, batch_inputs, store):
    recent = batch_inputs.iloc[-3000:]
    write(store, _scored_rows(recent, scorer), model_id=trained.model_id)
    replay = threshold_replay(store, trained.model_id, 0.5, 0.9, root=trained.root).summary.set_index("scenario")
    tiers = scorer.tiers
    assert replay.loc["current", ["medium_cut", "high_cut"]].tolist() == [tiers.medium.threshold, tiers.high.threshold]
    stored = store.query("SELECT tier, count(*) AS n FROM scores GROUP BY 1").set_index("tier")["n"]
    assert replay.loc["current", list(stored.index)].tolist() == stored.tolist()  # the replay reproduces the queue
    before = feature_drift(store, trained.model_id, root=trained.root).set_index("feature")
    assert len(before) == len(scorer.feature_names)
    assert before["n_live"].eq(3000).all()
    assert before.loc["amount", "psi"] < 0.1 and before.loc["amount", "level"] == "stable"
    assert before["alert_influence"].iloc[0] == before["alert_influence"].max() > 0
    write(store, _scored_rows(recent, scorer, amount_factor=5.0, prefix="x"), model_id=trained.model_id)
    after = feature_drift(store, trained.model_id, root=trained.root).set_index("feature")
    assert after.loc["amount", "n_live"] == 6000
    assert after.loc["amount", "psi"] > before.loc["amount", "psi"] + 0.25
    assert after.loc["amount", "ks"] > before.loc["amount", "ks"] + 0.2
    assert after.loc["amount", "level"] == "major"
    assert after.loc["tx_hour", "psi"] == pytest.approx(before.loc["tx_hour", "psi"], abs=1e-9)  # untouched input
    scores = score_drift(store, trained.model_id, root=trained.root).iloc[0]
    assert scores["n_live"] == 6000 and scores["psi"] > 0


def test_cli_monitor_drift(trained, scorer, batch_inputs, isolated_paths, capsys):
    from fraudcore import cli
    from fraudcore.config import get_paths

    shutil.copytree(trained.root / trained.model_id, get_paths().artifacts / trained.model_id)
    with Store.open() as opened:
        write(opened, _scored_rows(batch_inputs.iloc[-500:], scorer), model_id=trained.model_id)
    assert cli.main(["monitor", "drift", "--model", trained.model_id, "--top", "5", "--days", "30"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["model_id"] == trained.model_id and out["score"]["n_live"] == 500
    assert [f["rank"] for f in out["features"]] == [1, 2, 3, 4, 5]
    assert cli.main(["monitor", "drift"]) == 2  # no champion: a clear error, not a traceback
    assert "pass --model" in capsys.readouterr().err


def _chart_rows(chart) -> list[dict]:
    spec = chart.to_dict()
    return [row for rows in spec["datasets"].values() for row in rows]


def test_charts_draw_the_monitor_frames(store):
    from fraudcore.monitor_charts import (
        agreement_chart,
        alert_volume_chart,
        distribution_chart,
        drift_chart,
        replay_chart,
    )

    data = [("r1", 0, 0.95, 1, "high"), ("r2", 0, 0.85, 0, "high"), ("r3", 1, 0.45, 1, "low")]
    write(store, [{"id": i, "t": DAY0 + timedelta(days=d), "score": s, "label": y, "tier": t,
                   "features": {"x": s * 10, "c": "a"}} for i, d, s, y, t in data])
    replay = threshold_replay(store, "m", medium=0.4, high=0.9, current=(0.5, 0.8))
    alerts = {(r["day"][:10], r["scenario"]): r["events"] for r in _chart_rows(replay_chart(replay.daily))}
    assert alerts == {("2025-03-01", "current"): 2, ("2025-03-01", "proposed"): 2,
                      ("2025-03-02", "current"): 0, ("2025-03-02", "proposed"): 1}
    volumes = _chart_rows(alert_volume_chart(alert_volumes(store, days=2)))
    assert {r["tier"] for r in volumes} == {"high", "medium"} and sum(r["events"] for r in volumes) == 2
    drift = feature_drift(store, "m", reference=hand_reference())
    assert [r["feature"] for r in _chart_rows(drift_chart(drift, top=1))] == [drift["feature"].iloc[0]]
    shares = _chart_rows(distribution_chart(distribution(store, "m", "x", reference=hand_reference())))
    assert len(shares) == 6 and {r["data"] for r in shares} == {"reference", "live"}
    shadow_scores(store, [("r1", 0.2, "low"), ("r2", 0.95, "high"), ("r3", 0.5, "medium")], "chal")
    cells = _chart_rows(agreement_chart(shadow_agreement(store, "m", "chal").crosstab))
    assert len(cells) == 9 and sum(c["events"] for c in cells) == 3
    assert {(c["champion"], c["challenger"]): c["events"] for c in cells}[("high", "low")] == 1
