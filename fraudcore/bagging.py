"""Seed averaging for XGBoost: several boosters trained on the same data become one ordinary booster.

The average of k boosters' margins is ``base + (1/k) Σ trees``: one booster holding every bag's kept trees with
their leaf values divided by k. Because TreeSHAP is linear in the trees, its exact SHAP values are the average of
the bags' SHAP values, and it saves, loads, scores and explains like any other booster (one ``model.ubj``).
"""

from __future__ import annotations

import json

import xgboost as xgb

from fraudcore.errors import FraudcoreError


def average_boosters(boosters: list[xgb.Booster], rounds: list[int]) -> xgb.Booster:
    """One booster whose margin is the mean of ``boosters``' margins over their first ``rounds[i]`` trees."""
    if not boosters or len(boosters) != len(rounds):
        raise FraudcoreError(f"need one round count per booster; got {len(boosters)} boosters, {len(rounds)} counts")
    models = [json.loads(booster.save_raw("json")) for booster in boosters]
    learners = [model["learner"] for model in models]
    for learner in learners:
        trees = learner["gradient_booster"]["model"]
        if learner["learner_model_param"]["base_score"] != learners[0]["learner_model_param"]["base_score"] or \
                int(trees["gbtree_model_param"]["num_parallel_tree"]) != 1 or any(trees["tree_info"]):
            raise FraudcoreError("only single-target boosters with one tree per round and the same base score "
                                 "(trained on the same data) can be averaged")
    k, merged = len(boosters), []
    for learner, n in zip(learners, rounds, strict=True):
        for tree in learner["gradient_booster"]["model"]["trees"][:n]:
            leaf = [child == -1 for child in tree["left_children"]]
            tree["split_conditions"] = [v / k if is_leaf else v for v, is_leaf in zip(tree["split_conditions"], leaf,
                                                                                     strict=True)]
            tree["base_weights"] = [v / k for v in tree["base_weights"]]
            tree["id"] = len(merged)
            merged.append(tree)
    out = models[0]
    model = out["learner"]["gradient_booster"]["model"]
    model.update(trees=merged, tree_info=[0] * len(merged), iteration_indptr=list(range(len(merged) + 1)))
    model["gbtree_model_param"]["num_trees"] = str(len(merged))
    out["learner"]["attributes"] = {"best_iteration": str(len(merged) - 1), "bags": str(k)}
    return xgb.Booster(model_file=bytearray(json.dumps(out).encode()))
