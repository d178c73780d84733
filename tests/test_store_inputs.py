"""Model inputs stored packed with one layout per model (fraudcore.store_inputs): the round trip through a real
DuckDB file, layouts stored once, rows of a schema-2 file (JSON objects) read beside new ones, tampering refused."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from fraudcore import monitor
from fraudcore.errors import FraudcoreError
from fraudcore.review import decide
from fraudcore.review_similar import similar_cases
from fraudcore.store import EventKeys, Store
from fraudcore.store_inputs import INPUT_COLUMNS, Layout, layout_of
from fraudcore.store_schema import MIGRATIONS
from fraudcore.store_write import ScoreRows, WriteBatch

KEYS = EventKeys(entities=("customer_id",))
T0 = datetime(2024, 1, 1)


def live_batch(ids: list[str], inputs: dict, tier: str = "low") -> WriteBatch:
    """A batch as the live path builds it: score rows carrying their inputs as columns."""
    n = len(ids)
    scores = ScoreRows({"event_id": ids, "model_id": "m1", "score": np.linspace(0.1, 0.9, n), "tier": [tier] * n,
                        "reasons": ["[]"] * n, "shadow": False}, inputs)
    batch = WriteBatch(ids, np.array([T0 + timedelta(minutes=j) for j in range(n)], dtype="datetime64[us]"),
                       np.full(n, 10.0), [None] * n, [f'{{"event_id": "{i}"}}' for i in ids],
                       {"customer_id": ["7"] * n}, [scores])
    if tier == "high":
        batch.cases = {"event_id": ids, "tier": [tier] * n, "risk": [0.9] * n, "amount": [10.0] * n}
    return batch


def stored(store: Store, where: str = "true") -> list[dict]:
    return store.input_rows(store.query(f"SELECT {INPUT_COLUMNS} FROM scores WHERE {where} ORDER BY event_id"))


def test_layout_id_follows_names_and_kinds() -> None:
    base = Layout(("amount", "channel"), (False, True))
    assert len(base.layout_id) == 16 and base.layout_id == Layout(("amount", "channel"), (False, True)).layout_id
    assert base.layout_id != Layout(("amount", "channel"), (False, False)).layout_id
    assert base.layout_id != Layout(("channel", "amount"), (True, False)).layout_id
    assert base.positions() == {"amount": ("inputs", 0), "channel": ("labels", 0)}
    assert base.row(np.array([np.nan]).tobytes(), '["web"]') == {"amount": None, "channel": "web"}
    with pytest.raises(FraudcoreError, match="one kind per name"):
        Layout(("a", "b"), (False,))


def test_live_inputs_round_trip_packed_with_one_layout(tmp_path: Path) -> None:
    ids = [f"e{i:03d}" for i in range(100)]
    x = np.arange(100, dtype=float) / 3
    x[5] = np.nan
    inputs = {"x": x, "channel": ["web" if i % 2 else None for i in range(100)], "n_7d": np.arange(100.0)}
    with Store.open(tmp_path / "wb.duckdb", keys=KEYS) as store:
        assert store.commit([live_batch(ids[:1], {k: v[:1] for k, v in inputs.items()})]) == [1]  # one row
        assert store.commit([live_batch(ids[1:], {k: v[1:] for k, v in inputs.items()})]) == [99]
        store.commit([live_batch(["f000"], {"x": np.array([1.0]), "channel": ["pos"], "n_7d": np.array([2.0])})])
        rows = stored(store, "event_id LIKE 'e%'")
        raw = store.query("SELECT features, layout_id, octet_length(inputs) AS size, labels FROM scores "
                          "ORDER BY event_id")
        layouts = store.query("SELECT layout_id, names, categorical FROM input_layouts")
    assert rows[5] == {"x": None, "channel": "web", "n_7d": 5.0}  # NaN kept as missing; order of the model
    assert [r["x"] for r in rows[6:9]] == x[6:9].tolist()  # doubles exactly
    assert [r["channel"] for r in rows[:4]] == [None, "web", None, "web"]
    assert raw["features"].isna().all() and raw["layout_id"].nunique() == 1  # no JSON objects any more
    assert set(raw["size"]) == {16} and raw["labels"].iloc[-1] == '["pos"]'  # two float64s; f000's label as JSON
    assert len(layouts) == 1 and list(layouts["names"][0]) == ["x", "channel", "n_7d"]
    assert layouts["layout_id"][0] == layout_of(inputs).layout_id


def _schema_2_file(path: Path) -> None:
    """A store as the code before schema 3 left it: its score rows keep their inputs as a JSON object."""
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at TIMESTAMP NOT NULL)")
    for version, statements in enumerate(MIGRATIONS[:2], start=1):
        for statement in statements:
            con.execute(statement)
        con.execute("INSERT INTO schema_version VALUES (?, now())", [version])
    con.execute("INSERT INTO events VALUES ('old1', ?, 5.0, NULL, '{\"event_id\": \"old1\"}', now())", [T0])
    con.execute("INSERT INTO scores (event_id, model_id, score, tier, reasons, scored_at, features, shadow) VALUES "
                "('old1', 'm1', 0.8, 'high', '[]', now(), '{\"x\": 4.5, \"channel\": \"pos\", \"n_7d\": null}', false)")
    con.execute("INSERT INTO cases (event_id, tier, risk, amount, opened_at) VALUES ('old1', 'high', 0.8, 5.0, now())")
    con.close()


def test_rows_of_a_schema_2_file_are_read_beside_new_ones(tmp_path: Path) -> None:
    path = tmp_path / "old.duckdb"
    _schema_2_file(path)
    with Store.open(path, keys=KEYS) as store:
        assert store.schema_version == len(MIGRATIONS) >= 3
        store.commit([live_batch(["new1", "new2"], {"x": np.array([1.5, np.nan]), "channel": ["web", "pos"],
                                                    "n_7d": np.array([3.0, 4.0])}, tier="high")])
        rows = stored(store)
        live = monitor.live_inputs(store, "m1", ["x", "channel", "n_7d", "absent"], T0 - timedelta(days=1),
                                   T0 + timedelta(days=1), categorical=["channel"])
        cases = dict(store.query("SELECT event_id, case_id FROM cases").itertuples(index=False))
        decide(store, cases["old1"], "ana", "confirmed_fraud")
        similar = similar_cases(store, cases["new1"])
    assert rows == [{"x": 1.5, "channel": "web", "n_7d": 3.0}, {"x": None, "channel": "pos", "n_7d": 4.0},
                    {"x": 4.5, "channel": "pos", "n_7d": None}]
    live = live.sort_values("x", na_position="first").reset_index(drop=True)
    assert live["x"].tolist()[1:] == [1.5, 4.5] and np.isnan(live["x"][0])  # both kinds of row, as numbers
    assert sorted(live["channel"]) == ["pos", "pos", "web"]
    assert live["n_7d"].isna().sum() == 1 and live["absent"].isna().all()
    assert similar.compared == 1 and similar.neighbours["event_id"].tolist() == ["old1"]  # new compared with old
    assert similar.features == ["x", "channel"]  # n_7d: unknown for every decided case


def test_a_store_with_an_edited_layout_is_refused(tmp_path: Path) -> None:
    with Store.open(tmp_path / "wb.duckdb", keys=KEYS) as store:
        store.commit([live_batch(["e1"], {"x": np.array([1.0]), "y": np.array([2.0])})])
        store.query("UPDATE input_layouts SET names = ['y', 'x']")  # names swapped: values would change meaning
        with pytest.raises(FraudcoreError, match="edited outside the workbench"):
            stored(store)


def test_frames_with_inputs_of_two_shapes_keep_both(tmp_path: Path) -> None:
    events = pd.DataFrame({"event_id": ["a", "b", "c"], "event_time": [T0] * 3, "customer_id": [1, 2, 3]})
    scores = pd.DataFrame({"event_id": ["a", "b", "c"], "model_id": "m1", "score": [0.1, 0.2, 0.3],
                           "features": [{"x": 1, "c": "web"}, {"x": 2.5, "c": 7}, None]})
    with Store.open(tmp_path / "wb.duckdb", keys=KEYS) as store:
        store.write_batch(events, scores)
        rows = stored(store)
        layouts = store.input_layouts()
    assert rows == [{"x": 1.0, "c": "web"}, {"x": 2.5, "c": 7.0}, {}]
    assert len(layouts) == 2  # 'c' is a category in one row and a number in the other


def test_a_group_of_batches_inserts_its_scores_once_per_layout(tmp_path: Path, monkeypatch) -> None:
    import fraudcore.store_write as store_write

    inserts = []
    real = store_write._insert
    monkeypatch.setattr(store_write, "_insert", lambda con, table, columns: (inserts.append(table),
                                                                              real(con, table, columns)))
    same = [live_batch([f"{k}-{i}" for i in range(3)], {"x": np.arange(3.0) + k, "c": ["a", None, str(k)]})
            for k in range(3)]
    other = live_batch(["z-0"], {"x": np.array([9.0])})  # another model's layout
    with Store.open(tmp_path / "wb.duckdb", keys=KEYS) as store:
        assert store.commit([*same, other]) == [3, 3, 3, 1]
        rows = dict(zip(store.query("SELECT event_id FROM scores ORDER BY event_id")["event_id"], stored(store),
                        strict=True))
    assert inserts.count("scores") == 2  # the three API-sized batches together, the other layout apart
    assert rows["2-2"] == {"x": 4.0, "c": "2"} and rows["1-1"] == {"x": 2.0, "c": None} and rows["z-0"] == {"x": 9.0}


def test_a_layout_stored_by_a_rolled_back_transaction_is_stored_again(tmp_path: Path) -> None:
    inputs = {"x": np.array([1.0]), "c": ["a"]}
    batch = live_batch(["a"], inputs, tier="high")
    apart = live_batch(["a"], inputs).scores[0]
    apart.columns["scored_at"] = [T0]  # other columns: not merged, so the layout is met twice in the transaction
    batch.scores.append(apart)
    batch.cases = {name: values * 2 for name, values in batch.cases.items()}  # one case twice: the insert fails
    with Store.open(tmp_path / "wb.duckdb", keys=KEYS) as store:
        with pytest.raises(duckdb.ConstraintException):
            store.commit([batch])
        assert store.input_layouts() == {}  # rolled back with the rest
        store.commit([live_batch(["b"], {"x": np.array([np.inf]), "c": ["b"]})])
        assert stored(store) == [{"x": None, "c": "b"}]  # its layout stored after all; inf kept as missing


def test_frames_keep_missing_markers_and_categories_given_as_numbers(tmp_path: Path) -> None:
    events = pd.DataFrame({"event_id": ["a", "b"], "event_time": [T0] * 2, "customer_id": [1, 2]})
    scores = pd.DataFrame({"event_id": ["a", "b"], "model_id": "m1", "score": [0.1, 0.2],
                           "features": [{"x": pd.NA, "mcc": 5411}, {"x": 2.0, "mcc": 7995}]})
    with Store.open(tmp_path / "wb.duckdb", keys=KEYS) as store:
        store.write_batch(events, scores)
        rows = stored(store)
        live = monitor.live_inputs(store, "m1", ["x", "mcc"], T0, T0, categorical=["mcc"])
    assert rows == [{"x": None, "mcc": 5411.0}, {"x": 2.0, "mcc": 7995.0}]
    assert sorted(live["mcc"]) == ["5411", "7995"]  # as the model's category levels write them, not '5411.0'
