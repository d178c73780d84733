"""Check fraudcore's XGBoost ``device="cuda"`` training path against the CPU on one labelled dataset.

Meant for a machine with an NVIDIA GPU and the CUDA build of xgboost (see docs/gpu.md). It trains the default
XGBoost on the same time split with ``device="cuda"`` and on the CPU, compares test AP / ROC AUC and wall time, runs
``training.train`` end to end with the device injected into the search (TrainRequest has no device field), checks
that the saved artifact loads and scores on the CPU exactly like the in-memory model, and that
``fraudcore.explain`` works for the GPU-trained model. Prints one line per check and writes every figure as JSON.

Usage: PYTHONPATH=. python scripts/gpu_check.py --data d.parquet --json results.json [--search-minutes 0.5]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import xgboost as xgb
from sklearn.metrics import average_precision_score, roc_auc_score

from fraudcore import training
from fraudcore.dataset import open_dataset
from fraudcore.explain import _explainer, explain
from fraudcore.inputs import model_inputs
from fraudcore.models import XGBoostModel
from fraudcore.registry import load_model
from fraudcore.split import SplitPlan, make_split


def log(message: str) -> None:
    """One line of progress, flushed (the device returns only what was printed or written)."""
    print(message, flush=True)


def timed(fn: Callable[[], Any]) -> tuple[Any, float, float, list[str]]:
    """``fn()``, its wall and CPU seconds, and the warnings it raised (XGBoost's fallbacks arrive as warnings)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        wall, cpu = time.perf_counter(), time.process_time()
        out = fn()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return out, round(wall, 3), round(cpu, 3), [str(w.message)[:300] for w in caught]


def environment() -> dict[str, Any]:
    """Versions, CPU count, load average and the GPU as nvidia-smi names it."""
    info = xgb.build_info()
    try:
        gpu = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError) as exc:
        gpu = f"nvidia-smi failed: {exc}"
    import duckdb
    import pandas as pd
    return {"python": platform.python_version(), "xgboost": xgb.__version__, "use_cuda": info.get("USE_CUDA"),
            "xgb_cuda_version": info.get("CUDA_VERSION"), "numpy": np.__version__, "pandas": pd.__version__,
            "duckdb": duckdb.__version__, "cpus": os.cpu_count(),
            "loadavg": Path("/proc/loadavg").read_text().split()[:3], "gpu": gpu}


def fell_back(warned: list[str]) -> bool:
    """Whether XGBoost said it found no GPU and trained on the CPU instead (it warns; it does not fail)."""
    return any("No visible GPU" in w or "from GPU to CPU" in w for w in warned)


def fit_case(device: str, n_jobs: int, data: dict[str, Any], categorical: list[str]) -> tuple[XGBoostModel, dict]:
    """Fit the default XGBoost on ``device`` with ``n_jobs`` threads; figures on validation and test."""
    model = XGBoostModel(device=device, n_jobs=n_jobs, categorical=categorical, random_state=0)
    _, wall, cpu, warned = timed(lambda: model.fit(data["Xtr"], data["ytr"], data["Xva"], data["yva"]))
    score, predict_wall, _, _ = timed(lambda: model.predict_proba(data["Xte"]))
    valid = model.predict_proba(data["Xva"])
    return model, {"device": device, "n_jobs": n_jobs, "fit_wall_s": wall, "fit_cpu_s": cpu,
                   "best_iteration": model.best_iteration_, "valid_ap": average_precision_score(data["yva"], valid),
                   "test_ap": average_precision_score(data["yte"], score),
                   "test_roc_auc": roc_auc_score(data["yte"], score), "predict_test_wall_s": predict_wall,
                   "fell_back_to_cpu": fell_back(warned), "warnings": warned}


def end_to_end(opened: Any, device: str, model_id: str, root: Path, minutes: float) -> tuple[Any, dict]:
    """``training.train`` with ``device`` injected into every search trial; the in-memory best model and figures."""
    captured: dict[str, Any] = {}
    real_search = training.search

    def search_on_device(*args: Any, fixed: dict | None = None, **kwargs: Any) -> Any:
        result = real_search(*args, fixed={**(fixed or {}), "device": device}, **kwargs)
        captured["result"] = result
        return result

    training.search = search_on_device
    try:
        request = training.TrainRequest(model_id=model_id, search_minutes=minutes)
        meta, wall, cpu, warned = timed(lambda: training.train(opened, request, root=root))
    finally:
        training.search = real_search
    result = captured["result"]
    test = meta.metrics["test"]
    return result.best_model, {
        "device": device, "search_minutes": minutes, "train_wall_s": wall, "train_cpu_s": cpu,
        "train_seconds_metadata": meta.metrics["train_seconds"], "trials": len(result.trials),
        "stopped_by": result.stopped_by, "trial_seconds": [round(t.seconds, 2) for t in result.trials],
        "best_valid_ap": max(t.valid_ap for t in result.trials), "test_ap": test["average_precision"],
        "test_roc_auc": test["roc_auc"], "saved_params_device": meta.params.get("device"),
        "fell_back_to_cpu": fell_back(warned), "warnings": warned}


def booster_device(booster: xgb.Booster) -> str:
    """The device a booster predicts on, from its own configuration."""
    return json.loads(booster.save_config())["learner"]["generic_param"]["device"]


def artifact_check(memory: Any, model_id: str, root: Path, data: dict[str, Any]) -> dict:
    """Load the saved artifact and compare its scores with the in-memory model's, bit for bit."""
    loaded, meta = load_model(model_id, root=root)
    a, b = memory.predict_proba(data["Xte"]), loaded.predict_proba(data["Xte"])
    spec = loaded.matrix_
    na, nb = memory.predict_numpy(spec.numpy(data["Xte"])), loaded.predict_numpy(spec.numpy(data["Xte"]))
    return {"loaded": loaded, "rows": len(a), "identical_predict_proba": bool(np.array_equal(a, b)),
            "max_abs_diff": float(np.abs(a - b).max()), "identical_predict_numpy": bool(np.array_equal(na, nb)),
            "frame_vs_numpy_max_diff": float(np.abs(b - nb).max()), "loaded_params_device": loaded.device,
            "memory_booster_device": booster_device(memory.booster_),
            "loaded_booster_device": booster_device(loaded.booster_), "best_iteration": loaded.best_iteration_,
            "metadata_device": meta.params.get("device")}


def shap_check(memory: Any, loaded: Any, data: dict[str, Any], rows: int) -> dict:
    """``explain`` on the GPU-trained model: additivity, loaded == in-memory, and the booster's pred_contribs
    (on CPU and on GPU) as references and timings."""
    X = data["Xte"].iloc[:rows]
    ex, wall, _, warned = timed(lambda: explain(loaded, X))
    ex_mem = explain(memory, X)
    probability = loaded.predict_proba(X)
    explainer = _explainer(loaded)
    A = loaded.matrix_.numpy(X)
    types = ["q"] * loaded.matrix_.n_numeric + ["c"] * len(loaded.matrix_.categorical)
    dm = xgb.DMatrix(A, feature_names=loaded.matrix_.feature_names, feature_types=types, enable_categorical=True,
                     nthread=loaded.n_jobs)
    span = (0, loaded.best_iteration_ + 1)
    cpu_contribs, cpu_wall, _, _ = timed(lambda: loaded.booster_.predict(dm, pred_contribs=True, iteration_range=span))
    gpu_booster = loaded.booster_.copy()
    gpu_booster.set_param({"device": "cuda"})
    gpu_booster.predict(dm, pred_contribs=True, iteration_range=(0, 1))  # warm-up: copies the trees to the GPU
    gpu_contribs, gpu_wall, _, gpu_warned = timed(
        lambda: gpu_booster.predict(dm, pred_contribs=True, iteration_range=span))
    return {"rows": rows, "path": "treeshap tables" if explainer.tables is not None else "pred_contribs",
            "explain_wall_s": wall, "explain_warnings": warned,
            "additivity_max_diff": float(np.abs(ex.probability - probability).max()),
            "loaded_equals_memory": bool(np.array_equal(ex.values, ex_mem.values)),
            "vs_cpu_pred_contribs_max_diff": float(np.abs(ex.values - cpu_contribs[:, :-1]).max()),
            "vs_gpu_pred_contribs_max_diff": float(np.abs(ex.values - gpu_contribs[:, :-1]).max()),
            "cpu_pred_contribs_wall_s": cpu_wall, "gpu_pred_contribs_wall_s": gpu_wall, "gpu_warnings": gpu_warned}


def main() -> int:
    """Run every check on ``--data`` and write the figures to ``--json``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="labelled Parquet/CSV (e.g. from `fraudcore generate`)")
    parser.add_argument("--json", required=True, help="where to write the figures")
    parser.add_argument("--search-minutes", type=float, default=0.5, help="search budget of the end-to-end runs")
    parser.add_argument("--shap-rows", type=int, default=20_000, help="test rows explained")
    parser.add_argument("--cpu-only", action="store_true", help="skip the GPU cases (to try the script anywhere)")
    args = parser.parse_args()
    out: dict[str, Any] = {"environment": environment()}

    def save() -> None:  # after every stage, so a run cut off at its time limit still leaves its figures
        Path(args.json).write_text(json.dumps(out, indent=2, default=str))

    log(f"environment {json.dumps(out['environment'])}")

    opened = open_dataset(args.data)
    inputs, wall, cpu, _ = timed(lambda: model_inputs(opened, "auto"))
    split = make_split(SplitPlan(), inputs.times, inputs.y)
    X, y = inputs.frame[inputs.feature_columns], inputs.y
    data = {"Xtr": X.iloc[split.train], "ytr": y[split.train], "Xva": X.iloc[split.valid], "yva": y[split.valid],
            "Xte": X.iloc[split.test], "yte": y[split.test]}
    out["data"] = {"rows": len(X), "features": len(inputs.feature_columns), "frauds": int(y.sum()),
                   "train": len(split.train), "valid": len(split.valid), "test": len(split.test),
                   "features_wall_s": wall, "features_cpu_s": cpu}
    log(f"data {json.dumps(out['data'])}")
    save()

    gpu = "cpu" if args.cpu_only else "cuda"
    if not args.cpu_only:
        tiny = {k: v.iloc[:2000] if hasattr(v, "iloc") else v[:2000] for k, v in data.items()}
        _, out["cuda_warmup"] = fit_case("cuda", 2, tiny, inputs.categorical)
        log(f"cuda warm-up (CUDA context, 2000 rows) {json.dumps(out['cuda_warmup'], default=str)}")
        if out["cuda_warmup"]["fell_back_to_cpu"]:
            log("WARNING: XGBoost found no GPU: every 'cuda' figure below was trained on the CPU")
    fits, models = [], {}
    for device, n_jobs in ((gpu, 2), ("cpu", 2), ("cpu", os.cpu_count() or 2), (gpu, os.cpu_count() or 2)):
        model, figures = fit_case(device, n_jobs, data, inputs.categorical)
        models[(device, n_jobs)] = model
        fits.append(figures)
        log(f"fit {json.dumps(figures, default=str)}")
        save()
    out["fits"] = fits
    a, b = models[(gpu, 2)].predict_proba(data["Xte"]), models[("cpu", 2)].predict_proba(data["Xte"])
    out["gpu_vs_cpu_scores"] = {"max_abs_diff": float(np.abs(a - b).max()),
                                "pearson": float(np.corrcoef(a, b)[0, 1])}
    log(f"gpu vs cpu test scores {json.dumps(out['gpu_vs_cpu_scores'])}")

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        runs = []
        for device, minutes, model_id in ((gpu, 0.0, "gpu-defaults"), (gpu, args.search_minutes, "gpu-search"),
                                          ("cpu", args.search_minutes, "cpu-search")):
            model, figures = end_to_end(opened, device, model_id, root, minutes)
            runs.append(figures)
            out["train_runs"] = runs
            log(f"train() {model_id} {json.dumps(figures, default=str)}")
            save()
            if model_id == "gpu-defaults":
                check = artifact_check(model, model_id, root, data)
                loaded = check.pop("loaded")
                out["artifact"] = check
                log(f"artifact {json.dumps(check)}")
                save()
                out["shap"] = shap_check(model, loaded, data, args.shap_rows)
                log(f"shap {json.dumps(out['shap'])}")
                save()
    out["environment"]["loadavg_end"] = Path("/proc/loadavg").read_text().split()[:3]
    save()
    log(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
