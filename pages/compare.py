"""Compare & thresholds: models trained on the same data side by side; tune, save (logged) and promote."""

from pathlib import Path

import streamlit as st

from fraudcore import comparison, model_charts, registry, runtime, tuning
from fraudcore.comparison import ModelWindows, Window
from fraudcore.config import get_paths
from fraudcore.errors import FraudcoreError
from fraudcore.metadata import ModelMetadata

WINDOW_LABELS = {"valid": "Validation (where cuts are tuned)", "test": "Test (held out: check, don't tune)"}
TARGETS = {"precision": (0.9, 0.01, 1.0, 0.01), "recall": (0.8, 0.01, 1.0, 0.01),
           "alert_budget": (100.0, 0.1, 1e6, 10.0)}  # default, min, max, step
NUMBER_FORMATS = {"average_precision": "%.4f", "roc_auc": "%.4f", "precision_at_k": "%.3f",
                  "card_precision_at_k": "%.3f", "review_cut": "%.4f", "precision": "%.3f", "recall": "%.3f",
                  "alerts_per_day": "%.1f", "amount_caught_share": "%.3f", "expected_cost": "%.0f"}


@st.cache_data(ttl=3600, max_entries=32, show_spinner=False)
def scored(model_id: str, created_at: str, root: str, data_stamp: float) -> tuple[ModelWindows | None, str | None]:
    """A model's validation and test windows re-scored (or why not), cached per model version and data version."""
    try:
        return comparison.score_windows(model_id, root), None
    except FraudcoreError as exc:
        return None, str(exc)


def data_stamp(meta: ModelMetadata) -> float:
    try:
        return Path(str(meta.dataset["source"])).stat().st_mtime
    except OSError:
        return -1.0


def flash(message: str) -> None:
    st.session_state["compare_flash"] = message
    st.rerun()


def apply_suggestions(model_id: str, valid: Window, review_cost: float) -> None:
    """Set both cuts from the objectives (validation window): the slider moves to them."""
    pairs = [(st.session_state[f"tune_{t}_objective_{model_id}"], st.session_state.get(target_key(model_id, t)))
             for t in ("high", "medium")]
    try:
        policy = tuning.suggest_tiers(valid, pairs[0], pairs[1], review_cost)
    except FraudcoreError as exc:
        st.session_state["tune_message"] = f"No cut serves these objectives: {exc}"
        return
    st.session_state[f"tune_cuts_{model_id}"] = (min(policy.medium.threshold, 1.0), min(policy.high.threshold, 1.0))
    st.session_state["tune_message"] = " ".join(["Cuts set from the objectives on the validation window.",
                                                 *policy.notes])


def target_key(model_id: str, tier: str) -> str:
    return f"tune_{tier}_target_{model_id}_{st.session_state.get(f'tune_{tier}_objective_{model_id}')}"


def objective_inputs(model_id: str, tier: str, saved, objectives: list[str], column) -> tuple[str, float | None]:
    key = f"tune_{tier}_objective_{model_id}"
    default = saved.objective if saved.objective in objectives else "f1"
    objective = column.selectbox(f"{tier.title()} tier ({'block' if tier == 'high' else 'review'}): objective",
                                 objectives, index=objectives.index(default), format_func=tuning.OBJECTIVE_LABELS.get,
                                 key=key)
    if objective not in TARGETS:
        return objective, None
    value, low, high, step = TARGETS[objective]
    if objective == saved.objective and saved.target is not None:
        value = min(max(float(saved.target), low), high)
    return objective, column.number_input("Target", low, high, value, step=step, key=target_key(model_id, tier))


def money(value: float | None) -> str:
    return "—" if value is None else f"{value:,.0f}"


def delta(new: float | None, old: float | None, fmt: str) -> str | None:
    """The change against the saved tiers, or None when there is none."""
    return None if new is None or old is None or abs(new - old) < 1e-12 else format(new - old, fmt)


@st.fragment
def tuning_panel(model_id: str, meta: ModelMetadata, windows: ModelWindows, review_cost: float,
                 champion: str | None) -> None:
    """Objectives, cuts, what they give, save and promote: moving a cut reruns only this panel."""
    # an empty tier's cut sits above 1 (no score reaches it); the slider shows it at 1, and 1 on the slider is empty
    saved_high, saved_medium = meta.tiers.high.threshold, meta.tiers.medium.threshold
    st.caption(f"Saved tiers: block {tuning.cut_text(saved_high)}, review {tuning.cut_text(saved_medium)}. A cut "
               "at 1 leaves its tier empty. Suggestions use "
               f"the validation window ({windows.valid.describe()})."
               + (" The model was then trained again on train + validation, so these are the scores of the model "
                  "trained before that (out of sample), as at training." if windows.refitted else ""))
    objectives = tuning.available_objectives(windows.valid)
    high_col, medium_col = st.columns(2)
    high = objective_inputs(model_id, "high", meta.tiers.high, objectives, high_col)
    medium = objective_inputs(model_id, "medium", meta.tiers.medium, objectives, medium_col)
    st.button("Suggest cuts from the objectives", on_click=apply_suggestions,
              args=(model_id, windows.valid, review_cost))
    if "tune_message" in st.session_state:
        st.info(st.session_state.pop("tune_message"))

    cuts_key = f"tune_cuts_{model_id}"
    if cuts_key not in st.session_state:
        st.session_state[cuts_key] = (min(saved_medium, 1.0), min(saved_high, 1.0))
    cut_medium, cut_high = (tuning.slider_cut(c) for c in st.slider(
        "Cuts: review (medium) and block (high); below medium is allowed (low)", 0.0, 1.0, step=0.0001,
        format="%.4f", key=cuts_key))
    window_name = st.segmented_control("Window", list(WINDOW_LABELS), format_func=WINDOW_LABELS.get, default="valid",
                                       key="tune_window") or "valid"
    window = windows.window(window_name)
    now = tuning.what_if(window, cut_high, cut_medium, review_cost)
    before = tuning.what_if(window, saved_high, saved_medium, review_cost)

    m1, m2, m3, m4, m5, m6 = st.columns(6)
    m1.metric("Alerts per day", "—" if now.alerts_per_day is None else f"{now.alerts_per_day:,.1f}",
              delta(now.alerts_per_day, before.alerts_per_day, "+,.1f"), delta_color="inverse",
              help="Review and block tiers together; the delta is against the saved tiers")
    m2.metric("Precision", "—" if now.precision is None else f"{now.precision:.1%}",
              delta(now.precision, before.precision, "+.1%"))
    m3.metric("Recall", f"{now.recall:.1%}", delta(now.recall, before.recall, "+.1%"))
    m4.metric("Fraud amount caught", money(now.amount_caught), delta(now.amount_caught, before.amount_caught, "+,.0f"),
              help="Amount of the frauds that raised an alert"
                   + ("" if now.amount_caught_share is None else f" ({now.amount_caught_share:.1%} of it)"))
    m5.metric("Amount at risk", money(now.amount_at_risk), delta(now.amount_at_risk, before.amount_at_risk, "+,.0f"),
              delta_color="inverse", help="Amount of the frauds below the review cut (missed)")
    m6.metric("Cost", money(now.cost), delta(now.cost, before.cost, "+,.0f"), delta_color="inverse",
              help=f"Alerts x review cost ({money(now.review_spend)}) + amount at risk")
    left, right = st.columns(2)
    left.altair_chart(model_charts.confusion_chart(now.confusion), width="stretch")
    right.altair_chart(model_charts.tiers_chart(now.tiers), width="content")
    st.altair_chart(model_charts.threshold_chart(tuning.sweep_frame(window), cut_high, cut_medium), width="stretch")
    with st.expander("Tiers as a table"):
        st.dataframe(now.tiers, hide_index=True)

    who = (st.session_state.get("analyst") or "").strip()
    if not who:
        who = st.text_input("Your name (recorded with every change)", key="compare_who").strip()
    save_col, promote_col = st.columns(2)
    with save_col.form("save_tiers"):
        st.markdown(f"**Save these cuts as {model_id}'s tiers**")
        why = st.text_input("Why", key="tune_why", placeholder="e.g. review team grows to 6 analysts")
        if st.form_submit_button("Save tiers", type="primary"):
            try:
                if not who:
                    raise FraudcoreError("type your name first (Analyst in the sidebar): every change is logged")
                policy = tuning.policy_from_cuts(windows.valid, (high[0], high[1], cut_high),
                                                 (medium[0], medium[1], cut_medium), review_cost,
                                                 note=f"cuts set on the Compare page by {who}")
                registry.update_tiers(model_id, policy, who=who, why=why, root=paths.artifacts)
                workbench.forget_model(model_id)
                flash(f"Saved tiers of **{model_id}**: block {tuning.cut_text(cut_high)}, review "
                      f"{tuning.cut_text(cut_medium)}.")
            except FraudcoreError as exc:
                st.error(f"Not saved: {exc}")
    with promote_col.form("promote"):
        st.markdown(f"**Champion:** {champion or 'none yet'}")
        reason = st.text_input("Why promote", key="promote_why", placeholder="e.g. higher AP on the shared test window")
        if st.form_submit_button(f"Promote {model_id} to champion", disabled=model_id == champion):
            try:
                registry.promote(model_id, root=paths.artifacts, who=who, why=reason)
                flash(f"**{model_id}** is now the champion: it scores new events.")
            except FraudcoreError as exc:
                st.error(f"Not promoted: {exc}")
    if meta.tier_log:
        st.subheader("Tier changes")
        st.dataframe(tuning.tier_log_frame(meta.tier_log), hide_index=True)


st.title("Compare & thresholds")
paths = get_paths().ensure()
workbench = runtime.current()
if "compare_flash" in st.session_state:
    st.success(st.session_state.pop("compare_flash"))

groups = {g.fingerprint: g for g in comparison.model_groups(paths.artifacts)}
if not groups:
    st.info("No models yet: train one on the Train page.")
    st.stop()
fingerprint = st.selectbox("Trained on", list(groups), format_func=lambda f: groups[f].label, key="compare_group",
                           help="Only models trained on the same data (same fingerprint) are compared")
group = groups[fingerprint]
metas = {m.model_id: m for m in group.models}
chosen = st.multiselect("Models", list(metas), default=list(metas)[:4], key=f"compare_models_{fingerprint[:16]}")
if not chosen:
    st.info("Pick at least one model.")
    st.stop()

bar = st.progress(0.0, text="Scoring the models on their validation and test windows…")
results = {}
for i, model_id in enumerate(chosen):
    meta = metas[model_id]
    results[model_id] = scored(model_id, meta.created_at.isoformat(), str(paths.artifacts), data_stamp(meta))
    bar.progress((i + 1) / len(chosen), text=f"Scored {model_id}")
bar.empty()
ready = {model_id: found for model_id, (found, _) in results.items() if found is not None}
for model_id, (_, error) in results.items():
    if error:
        st.warning(f"**{model_id}** cannot be re-scored: {error}. Its saved test metrics are shown instead.")

common: dict[str, Window] = {}
try:
    common = comparison.common_test(list(ready.values()))
except FraudcoreError as exc:
    st.warning(str(exc))

champion = workbench.champion_id()
st.subheader("Curves")
if common:
    pr, roc = comparison.curve_frames(common)
    st.caption(f"On the test window the models share: {next(iter(common.values())).describe()}")
else:
    pr, roc = comparison.saved_curve_frames([metas[m] for m in chosen])
    st.caption("Each model on its own test window, as saved at training.")
left, right = st.columns(2)
left.altair_chart(model_charts.pr_chart(pr), width="stretch")
right.altair_chart(model_charts.roc_chart(roc), width="stretch")

st.subheader("Metrics")
review_cost = st.number_input("Review cost per alert", 0.0, 1e6, 5.0, step=1.0, key="compare_review_cost",
                              help="What reviewing one alert costs; cost = alerts x review cost + amount at risk")
table = comparison.metrics_table([metas[m] for m in chosen], common, champion=champion, review_cost=review_cost)
st.dataframe(table, hide_index=True, column_config={
    **{c: st.column_config.NumberColumn(c.replace("_", " "), format=f) for c, f in NUMBER_FORMATS.items()},
    "champion": st.column_config.CheckboxColumn("champion"),
    "created_at": st.column_config.DatetimeColumn("created", format="YYYY-MM-DD HH:mm")})

st.header("Thresholds")
tunable = [m for m in chosen if m in ready]
if not tunable:
    st.info("Threshold tuning needs a model re-scored on the data it was trained on.")
    st.stop()
model_id = st.selectbox("Model to tune", tunable, index=tunable.index(champion) if champion in tunable else 0,
                        key="tune_model")
meta, windows = metas[model_id], ready[model_id]
tuning_panel(model_id, meta, windows, review_cost, champion)
