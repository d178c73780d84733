"""Monitor: drift of the champion's inputs and scores against its training reference (PSI, KS) ranked by how much
each input drives current alerts; alert volumes; realized precision; label maturity; threshold replay; shadow
challenger agreement; retraining from labels with a one-click (logged) promotion."""

from datetime import datetime

import streamlit as st

from fraudcore import monitor, monitor_charts, monitor_view, review_view, runtime
from fraudcore.errors import FraudcoreError
from fraudcore.monitor_compare import ShadowAgreement, ThresholdReplay, shadow_agreement, threshold_replay
from fraudcore.registry import list_models
from fraudcore.retrain import RetrainReport, promote_if_better, retrain, retrain_history
from fraudcore.shadow import clear_shadow, get_shadow, set_shadow, shadow_log
from pages.progress import job_progress

WINDOWS = {1: "Last day", 7: "Last 7 days", 30: "Last 30 days"}
LEVEL_ICONS = {"stable": "🟢", "moderate": "🟠", "major": "🔴"}


# ---- cached reads: keyed by the store's write generation (and the decisions where labels matter) ------------------

@st.cache_data(ttl=300, max_entries=32, show_spinner="Measuring drift…")
def drift(key: tuple, model_id: str, since: datetime, until: datetime, _store):
    return monitor.feature_drift(_store, model_id, since, until)


@st.cache_data(ttl=300, max_entries=64, show_spinner=False)
def shares(key: tuple, model_id: str, feature: str | None, since: datetime, until: datetime, _store):
    return monitor.distribution(_store, model_id, feature, since, until)


@st.cache_data(ttl=300, max_entries=32, show_spinner=False)
def score_shift(key: tuple, model_id: str, since: datetime, until: datetime, _store):
    return monitor_view.score_shift(_store, model_id, since, until)


@st.cache_data(ttl=300, max_entries=8, show_spinner=False)
def volumes(key: tuple, days: int, _store):
    return monitor.alert_volumes(_store, days=days)


@st.cache_data(ttl=300, max_entries=64, show_spinner="Replaying the queue…")
def replay(key: tuple, decisions: int, model_id: str, medium: float, high: float, since: datetime, until: datetime,
           _store) -> ThresholdReplay:
    return threshold_replay(_store, model_id, medium, high, since, until)


@st.cache_data(ttl=300, max_entries=16, show_spinner=False)
def agreement(key: tuple, decisions: int, champion: str, challenger: str, since: datetime, until: datetime,
              _store) -> ShadowAgreement:
    return shadow_agreement(_store, champion, challenger, since, until)


@st.cache_data(ttl=60, show_spinner=False)
def models(root: str, stamp: int) -> list[dict]:
    return list_models(root)


def flash(kind: str, text: str) -> None:
    st.session_state["mon_flash"] = (kind, text)


def start_shadow(model_id: str, who: str) -> None:
    try:
        set_shadow(model_id, who=who, why=st.session_state.get("mon_shadow_why", ""))
        flash("success", f"`{model_id}` now scores the live feed in shadow (no cases are opened for its alerts).")
    except FraudcoreError as exc:
        flash("error", f"Could not shadow {model_id}: {exc}")


def stop_shadow(who: str) -> None:
    try:
        stopped = clear_shadow(who, why=st.session_state.get("mon_shadow_why", ""))
        flash("success", f"Stopped shadow scoring with `{stopped}`." if stopped else "No model was in shadow.")
    except FraudcoreError as exc:
        flash("error", f"Could not stop shadow scoring: {exc}")


def start_retrain(store, who: str, original: str | None) -> None:
    minutes = st.session_state.get("mon_retrain_minutes")
    include = original if st.session_state.get("mon_retrain_original") else None
    unlabelled = st.session_state.get("mon_retrain_unlabelled", "drop")
    job = runtime.current().jobs.submit(
        "retrain", lambda progress: retrain(store, who=who, include_original=include, search_minutes=minutes,
                                            unlabelled=unlabelled, progress=progress), key="retrain")
    st.session_state["mon_retrain_job"] = job.job_id


def promote_challenger(report: RetrainReport, who: str) -> None:
    try:
        promote = promote_if_better if report.better else monitor_view.promote_anyway
        promoted = promote(report, who=who)
        flash("success", f"`{promoted.challenger_id}` is the champion now (promoted by {who}; the previous champion "
                         f"`{promoted.champion_id}` is kept in champion.json).")
        st.session_state["mon_promoted"] = report.challenger_id
    except FraudcoreError as exc:
        flash("error", f"Could not promote {report.challenger_id}: {exc}")


st.title("Monitor")
workbench = runtime.current()
analyst = (st.session_state.get("analyst") or "").strip()
message = st.session_state.pop("mon_flash", None)
if message:
    (st.success if message[0] == "success" else st.error)(message[1])

champion = workbench.champion_id()
if champion is None:
    st.info("There is no champion model to monitor yet: train one on the Train page and promote it on the Compare "
            "page (the first run does both for the demo data).")
    st.stop()
try:
    scorer = workbench.scorer(champion)
except FraudcoreError as exc:
    st.error(f"The champion `{champion}` cannot be loaded: {exc}")
    st.stop()
store = workbench.store(scorer)
status = monitor_view.live_status(store, champion)
key = (str(store.path), id(store), store.generation)

st.markdown(f"**Champion** · `{champion}`")
days = st.segmented_control("Window", list(WINDOWS), default=7, key="mon_days", format_func=WINDOWS.get) or 7
since, until = monitor.window(store, days=days)
if status.events:
    st.caption(f"{WINDOWS[days]} of event time up to the newest stored event: {since:%Y-%m-%d %H:%M} – "
               f"{until:%Y-%m-%d %H:%M} · {status.events:,} events scored live by the champion in all")
decisions = review_view.decisions_version(store)

drift_tab, alerts_tab, labels_tab, replay_tab, shadow_tab, retrain_tab = st.tabs(
    ["Drift", "Alerts & precision", "Label maturity", "Threshold replay", "Shadow challenger", "Retrain"])

no_live = (f"No live events scored by `{champion}` yet. Start the feed on the Live page (or send events to "
           "`POST /api/score`); drift, alerts and replay are measured on what the champion scores.")

with drift_tab:
    if not status.events:
        st.info(no_live)
    else:
        try:
            table = drift(key, champion, since, until, store)
            score = score_shift(key, champion, since, until, store)
        except FraudcoreError as exc:
            st.info(f"Drift cannot be measured for `{champion}`: {exc}")
            table = None
        if table is not None:
            levels = monitor_view.drift_levels(table)
            major, moderate, scored, ks = st.columns(4)
            major.metric("Inputs with major drift", levels["major"], help="PSI ≥ 0.25")
            moderate.metric("Inputs with moderate drift", levels["moderate"], help="0.1 ≤ PSI < 0.25")
            scored.metric("Score PSI", "—" if score["psi"] is None else f"{score['psi']:.3f}",
                          help=f"Live scores against the model's out-of-sample scores: {score['level'] or 'n/a'}")
            ks.metric("Score KS", "—" if score["ks"] is None else f"{score['ks']:.3f}")
            st.subheader("Inputs, ranked by how much they drive current alerts")
            st.altair_chart(monitor_charts.drift_chart(table), width="stretch")
            st.dataframe(monitor_view.drift_table(table), hide_index=True, column_config={
                "alert_share": st.column_config.NumberColumn("top reason in alerts", format="percent"),
                "alert_influence": st.column_config.NumberColumn("alert influence", format="%.3f"),
                "psi": st.column_config.NumberColumn("PSI", format="%.3f"),
                "ks": st.column_config.NumberColumn("KS", format="%.3f"),
                "ks_pvalue": st.column_config.NumberColumn("KS p-value", format="%.3g"),
                "ref_missing": st.column_config.NumberColumn("ref missing", format="percent"),
                "live_missing": st.column_config.NumberColumn("live missing", format="percent")})
            feature = st.selectbox("Distribution of", list(table["feature"]), key="mon_feature")
            st.altair_chart(monitor_charts.distribution_chart(
                shares(key, champion, feature, since, until, store), f"{feature}: training reference vs live"),
                width="stretch")
            st.subheader("Score distribution")
            st.altair_chart(monitor_charts.distribution_chart(
                shares(key, champion, None, since, until, store), "score: out-of-sample reference vs live"),
                width="stretch")

with alerts_tab:
    if not status.events:
        st.info(no_live)
    else:
        st.subheader("Alerts per tier per day (last 30 days)")
        st.altair_chart(monitor_charts.alert_volume_chart(volumes(key, 30, store)), width="stretch")
        st.subheader("Realized precision of reviewed alerts")
        precision = monitor.realized_precision(store, since, until)
        figures = monitor_view.precision_metrics(precision)
        for column, fig in zip(st.columns(len(figures)), figures, strict=True):
            column.metric(fig["label"], fig["value"], help=fig["help"])
        st.dataframe(precision, hide_index=True, column_config={
            "precision": st.column_config.NumberColumn(format="percent"),
            "ci_low": st.column_config.NumberColumn("95% CI low", format="percent"),
            "ci_high": st.column_config.NumberColumn("95% CI high", format="percent")})

with labels_tab:
    delay = st.number_input("Label delay (days)", min_value=0.0, max_value=180.0, value=7.0, step=1.0,
                            key="mon_delay", help="How long after an event its label (chargeback, review) arrives")
    summary = monitor.maturity_summary(store, delay)
    events, mature, labelled = st.columns(3)
    events.metric("Events stored", f"{summary['events']:,}")
    mature.metric("Old enough to be labelled", "—" if summary["mature_share"] is None
                  else f"{summary['mature_share']:.1%}")
    labelled.metric("Labelled (of those)", "—" if summary["labelled_share_of_mature"] is None
                    else f"{summary['labelled_share_of_mature']:.1%}")
    if summary["events"]:
        maturity = monitor.label_maturity(store, delay, days=60)
        st.altair_chart(monitor_view.maturity_chart(maturity, summary["cutoff"]), width="stretch")

with replay_tab:
    if not status.events:
        st.info(no_live)
    else:
        current = (scorer.tiers.medium.threshold, scorer.tiers.high.threshold)
        grid = monitor_view.cut_grid(current)
        medium_col, high_col = st.columns(2)
        medium = medium_col.select_slider("Medium cut (review)", grid, value=current[0], key=f"mon_medium|{champion}",
                                          format_func=lambda v: f"{v:.4g}")
        high = high_col.select_slider("High cut (block)", grid, value=current[1], key=f"mon_high|{champion}",
                                      format_func=lambda v: f"{v:.4g}")
        st.caption(f"Current cuts: medium {current[0]:.4g}, high {current[1]:.4g}. Replayed over the events the "
                   f"champion scored in the window; frauds are events labelled 1 (confirmed or reported).")
        try:
            result = replay(key, decisions, champion, medium, high, since, until, store)
        except FraudcoreError as exc:
            st.error(str(exc))
            result = None
        if result is not None:
            figures = monitor_view.replay_deltas(result.summary)
            for row_start in range(0, len(figures), 4):
                for column, fig in zip(st.columns(4), figures[row_start:row_start + 4], strict=False):
                    column.metric(fig["label"], fig["value"], fig["delta"] if fig["delta"] != 0 else None,
                                  delta_color="inverse" if fig["inverse"] else "normal")
            st.altair_chart(monitor_charts.replay_chart(result.daily), width="stretch")
            left, right = st.columns(2)
            left.markdown("**Current tier → proposed tier** (events)")
            left.dataframe(monitor_view.moves_table(result.moves), hide_index=True)
            right.markdown("**Both scenarios**")
            right.dataframe(monitor_view.replay_table(result.summary), hide_index=True)

with shadow_tab:
    try:
        record = get_shadow()
    except FraudcoreError as exc:
        st.error(str(exc))
        record = None
    if record is None:
        st.info("No challenger scores the feed in shadow. Pick one below: it scores every new live event beside the "
                "champion, opening no cases, so the two can be compared on the same traffic.")
    else:
        st.markdown(f"**Shadow challenger** · `{record.model_id}` (set by {record.set_by}, "
                    f"{record.set_at:%Y-%m-%d %H:%M} UTC{': ' + record.why if record.why else ''})")
        found = agreement(key, decisions, champion, record.model_id, since, until, store)
        if not found.events:
            st.info("No events scored by both models in this window yet; new live events are scored by both.")
        else:
            both, tiers_same, alerts_same = st.columns(3)
            both.metric("Events scored by both", f"{found.events:,}")
            tiers_same.metric("Same tier", f"{found.agreement:.1%}")
            alerts_same.metric("Same alert decision", f"{found.alert_agreement:.1%}")
            st.altair_chart(monitor_charts.agreement_chart(found.crosstab), width="stretch")
            st.markdown("**Alerts each model raised**")
            st.dataframe(found.alerts, hide_index=True)
    if not analyst:
        st.info("Type your name in the sidebar to change the shadow model (the change is logged with it).")
    else:
        candidates = monitor_view.shadow_candidates(models(str(workbench.paths.artifacts),
                                                           workbench.paths.artifacts.stat().st_mtime_ns), champion)
        pick_col, why_col = st.columns(2)
        picked = pick_col.selectbox("Challenger", candidates, key="mon_shadow_pick", index=None,
                                    placeholder="no other model yet" if not candidates else "pick a model")
        why_col.text_input("Why", key="mon_shadow_why", placeholder="e.g. retrained on last month's labels")
        set_col, clear_col = st.columns(2)
        set_col.button("Score in shadow", key="mon_shadow_set", disabled=picked is None, on_click=start_shadow,
                       args=(picked, analyst))
        clear_col.button("Stop shadow scoring", key="mon_shadow_clear", disabled=record is None,
                         on_click=stop_shadow, args=(analyst,))
    log = shadow_log()
    if log:
        with st.expander(f"Shadow changes ({len(log)})"):
            st.dataframe(log)

with retrain_tab:
    st.markdown("Train a challenger on the stored events with their labels (analyst dispositions and reported "
                "frauds) using the champion's protocol, then compare both on the same recent labelled window.")
    job = workbench.jobs.get(st.session_state.get("mon_retrain_job", "")) or workbench.jobs.latest("retrain")
    original = scorer.metadata.dataset.get("source")
    if job is not None and job.running:
        job_progress(job.job_id, "Retraining")
    elif not analyst:
        st.info("Type your name in the sidebar to retrain and promote (both are logged with it).")
    else:
        with st.form("mon_retrain_form"):
            st.number_input("Search budget (minutes)", min_value=0.0, max_value=120.0, value=None, step=0.5,
                            key="mon_retrain_minutes", placeholder="the champion's")
            st.radio("Unlabelled events", ["drop", "legit"], key="mon_retrain_unlabelled", horizontal=True,
                     format_func={"drop": "leave out", "legit": "count as legitimate once older than the label "
                                                            "delay"}.get)
            st.checkbox(f"Also train on the original data (`{original}`)", key="mon_retrain_original",
                        disabled=not original)
            st.form_submit_button("Retrain from labels", type="primary", on_click=start_retrain,
                                  args=(store, analyst, original))
    if job is not None and job.status == "failed":
        st.error(f"The retrain failed: {job.error}")
    elif job is not None and job.status == "done":
        report: RetrainReport = job.result
        promoted = st.session_state.get("mon_promoted") == report.challenger_id or report.promoted
        verdict = "better" if report.better else "not better"
        st.markdown(f"**`{report.challenger_id}`** is **{verdict}** than `{report.champion_id}` on "
                    f"{report.window_start:%Y-%m-%d} – {report.window_end:%Y-%m-%d} ({report.rows:,} training rows: "
                    f"{report.from_store:,} from the store, {report.from_original:,} original).")
        st.markdown("\n".join(f"- {reason}" for reason in report.reasons))
        st.dataframe(monitor_view.retrain_table(report), hide_index=True)
        if promoted:
            st.success(f"`{report.challenger_id}` was promoted.")
        elif analyst:
            anyway = report.better or st.checkbox(
                "Promote it although it did not beat the champion on this window", key="mon_promote_anyway")
            st.button(f"Promote {report.challenger_id}", key="mon_promote", type="primary" if report.better else
                      "secondary", disabled=not anyway or workbench.champion_id() != report.champion_id,
                      on_click=promote_challenger, args=(report, analyst),
                      help="The promotion is logged in champion.json with your name, why and the previous champion.")
    history = retrain_history()
    if history:
        with st.expander(f"Past retrains ({len(history)})"):
            st.dataframe(monitor_view.retrain_history_table(history), hide_index=True)
