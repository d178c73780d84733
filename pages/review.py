"""Review queue: cases by tier, then risk x amount, then age; claim, assign, release; a case's drill-down (fields,
score, reasons and waterfall, entity history, similar decided cases, audit trail) and its disposition with a note."""

import math

import streamlit as st

from fraudcore import review, review_charts, review_view, runtime, shap_charts
from fraudcore.errors import FraudcoreError
from fraudcore.event_form import TIER_COLOURS
from fraudcore.review import DISPOSITION_TEXT, DISPOSITIONS, ReviewError
from fraudcore.review_detail import case_detail
from fraudcore.review_queue import TIER_ORDER, UNASSIGNED, QueueFilter, queue, queue_count
from fraudcore.review_similar import SimilarCases, similar_cases

PAGE_SIZE = 50
STATUSES = {"Open & pending": review.ACTIVE, "Open": ("open",), "Pending": ("pending",), "Closed": ("closed",),
            "Any status": ()}
HOLDERS = ["Anyone", "Unassigned", "Me"]
ANY_ENTITY = "(any entity)"


@st.cache_data(ttl=600, max_entries=256, show_spinner="Finding similar decided cases…")
def similar(db: str, case_id: int, decisions: int, _store) -> SimilarCases:
    """The nearest decided cases, recomputed when any decision is recorded (``decisions``: the newest one's id)."""
    return similar_cases(_store, case_id, k=10)


def keep_analyst() -> None:
    st.session_state["analyst"] = st.session_state.get("review_analyst", "").strip()


def open_from_table() -> None:
    rows = st.session_state["rq_table"].selection.rows
    ids = st.session_state.get("rq_page_ids", [])
    if rows and rows[0] < len(ids):
        st.session_state["rq_case"] = ids[rows[0]]


def act(store, what: str, case_id: int, analyst: str) -> None:
    """Run one review action from a button; the outcome is shown above the case on the next run."""
    try:
        if what == "claim":
            review.claim(store, case_id, analyst)
            message = f"You claimed case {case_id}."
        elif what == "release":
            review.release(store, case_id, analyst)
            message = f"You released case {case_id}; others can claim it now."
        elif what == "assign":
            to = st.session_state.get("rq_assign_to", "")
            review.assign(store, case_id, to, by=analyst)
            message = f"Case {case_id} is assigned to {to.strip()}."
            st.session_state["rq_assign_to"] = ""
        elif what == "decide":
            disposition, note = st.session_state["rq_disposition"], st.session_state.get("rq_note", "")
            review.decide(store, case_id, analyst, disposition, note)
            message = f"Case {case_id}: recorded **{DISPOSITION_TEXT[disposition]}**."
            st.session_state["rq_note"] = ""
        else:
            review.reopen(store, case_id, analyst, st.session_state.get("rq_reopen_note", ""))
            message = f"Case {case_id} is open again; its label was cleared."
            st.session_state["rq_reopen_note"] = ""
        st.session_state["rq_flash"] = ("success", message)
    except ReviewError as exc:
        st.session_state["rq_flash"] = ("error", str(exc))


st.title("Review queue")
workbench = runtime.current()
try:
    scorer = workbench.scorer()
except FraudcoreError:
    scorer = None  # no champion yet: the queue still works; history lookups use the store's current keys
store = workbench.store(scorer)

analyst = (st.session_state.get("analyst") or "").strip()
if not analyst:
    st.text_input("Your name", key="review_analyst", on_change=keep_analyst, placeholder="Type it to act on cases",
                  help="Recorded with every claim, assignment and decision (the sidebar keeps it for the session).")

# ---- the queue ----------------------------------------------------------------------------------------------------
status_col, holder_col, entity_col, value_col = st.columns([2, 2, 2, 2])
statuses = STATUSES[status_col.selectbox("Status", list(STATUSES), key="rq_status")]
holder = holder_col.selectbox("Held by", HOLDERS if analyst else HOLDERS[:2], key="rq_holder")
entity = entity_col.selectbox("Entity", [ANY_ENTITY, *store.keys.entities], key="rq_entity")
value = value_col.text_input("Entity value", key="rq_entity_value",
                             disabled=entity == ANY_ENTITY, placeholder="e.g. 1156")
assignee = {"Anyone": None, "Unassigned": UNASSIGNED, "Me": analyst}[holder]
entities = {entity: value.strip()} if entity != ANY_ENTITY and value.strip() else {}
try:
    counts = {t: queue_count(store, QueueFilter(tiers=[t], statuses=statuses, assignee=assignee, entities=entities))
              for t in TIER_ORDER}
except ReviewError as exc:
    st.error(str(exc))
    st.stop()
counts["all"] = sum(counts.values())
tier = st.segmented_control("Tier", ["all", *TIER_ORDER], default="all", key="rq_tier",
                            format_func=lambda t: f"{t.title()} · {counts[t]:,}")
tiers = () if tier in (None, "all") else (tier,)
filters = QueueFilter(tiers=tiers, statuses=statuses, assignee=assignee, entities=entities)
total = counts[tier or "all"]
pages = max(1, math.ceil(total / PAGE_SIZE))
listing = st.container()
# one pager per filter: changing a filter starts again at its first page
page_key = f"rq_page|{tier}|{'+'.join(statuses)}|{holder}|{entity}={value.strip()}"
page_no = st.pagination(pages, key=page_key) if pages > 1 else 1
first = (page_no - 1) * PAGE_SIZE
rows = queue(store, filters, limit=PAGE_SIZE, offset=first)
listing.caption(f"{total:,} cases · showing {first + 1 if total else 0:,}–{first + len(rows):,} · "
                "ordered by tier, then risk × amount, then age (oldest first)")
table = review_view.queue_table(rows, store.keys.entities)
labels = review_view.case_labels(rows)  # case id -> picker label, in queue order
st.session_state["rq_page_ids"] = list(labels)
if table.empty:
    listing.info("No cases match these filters. Cases open when the live feed scores events in the medium or high "
                 "tier (start the feed on the Live page).")
else:
    listing.dataframe(table, key="rq_table", on_select=open_from_table, selection_mode="single-row",
                      hide_index=True, column_config={
                          "case_id": st.column_config.NumberColumn("case", format="%d"),
                          "risk": st.column_config.ProgressColumn("risk", min_value=0.0, max_value=1.0,
                                                                  format="percent"),
                          "amount": st.column_config.NumberColumn("amount", format="%.2f"),
                          "exposure": st.column_config.NumberColumn("risk × amount", format="%.2f"),
                          "event_time": st.column_config.DatetimeColumn("event time", format="YYYY-MM-DD HH:mm"),
                          "assignee": "held by"})

current = st.session_state.get("rq_case")
options = list(labels) + ([current] if current is not None and current not in labels else [])
case_id = st.selectbox("Open a case", options, key="rq_case", index=None, placeholder="Pick a case (or click a row)",
                       format_func=lambda c: labels.get(c, f"#{c}"))
if case_id is None:
    st.stop()

# ---- the case -----------------------------------------------------------------------------------------------------
st.divider()
flash = st.session_state.pop("rq_flash", None)
if flash:
    (st.success if flash[0] == "success" else st.error)(flash[1])
try:
    detail = case_detail(store, case_id, similar_k=0)
except ReviewError as exc:
    st.error(str(exc))
    st.stop()
case, score = detail.case, detail.score
st.subheader(f"Case {case_id}")
prob_col, tier_col, amount_col, opened_col = st.columns(4)
prob_col.metric("Fraud probability", f"{case['risk']:.1%}" if case["risk"] is not None else "—")
with tier_col:
    st.markdown("**Tier**")
    st.badge((case["tier"] or "none").upper(), color=TIER_COLOURS.get(case["tier"], "gray"))
amount_col.metric("Amount", f"{case['amount']:,.2f}" if case["amount"] is not None else "—")
opened_col.metric("Opened", review_view.opened_text(case["opened_at"]))
st.markdown(f"**Status** · {review_view.case_status_text(case)}")
if case.get("decision_note"):
    st.caption(f"Last decision note: {case['decision_note']}")

closed = case["status"] == "closed"
if not analyst:
    st.info("Type your name above (or in the sidebar) to claim, assign or decide this case.")
elif not closed:
    claim_col, release_col, to_col, assign_col = st.columns([1, 1, 2, 1], vertical_alignment="bottom")
    claim_col.button("Claim", key="rq_claim", on_click=act, args=(store, "claim", case_id, analyst),
                     disabled=case["assignee"] is not None, width="stretch")
    release_col.button("Release", key="rq_release", on_click=act, args=(store, "release", case_id, analyst),
                       disabled=case["assignee"] != analyst, width="stretch")
    to_col.text_input("Assign to", key="rq_assign_to", placeholder="analyst name")
    assign_col.button("Assign", key="rq_assign", on_click=act, args=(store, "assign", case_id, analyst),
                      width="stretch")
    with st.form("rq_decide_form"):
        st.radio("Disposition", list(DISPOSITIONS), key="rq_disposition", horizontal=True,
                 format_func=DISPOSITION_TEXT.get)
        st.text_area("Note", key="rq_note", placeholder="What you found (required for 'needs more info')",
                     max_chars=review.MAX_NOTE)
        st.form_submit_button("Record decision", type="primary", on_click=act,
                              args=(store, "decide", case_id, analyst))
else:
    with st.form("rq_reopen_form"):
        st.text_area("Why reopen it", key="rq_reopen_note", placeholder="Reopening clears the event's label")
        st.form_submit_button("Reopen the case", on_click=act, args=(store, "reopen", case_id, analyst))

why_tab, event_tab, history_tab, similar_tab, audit_tab = st.tabs(
    ["Why", "Event", "History", "Similar cases", "Audit trail"])
with why_tab:
    if score is None:
        st.info("This event has no live score stored.")
    else:
        st.markdown("\n".join(f"- {line}" for line in review_view.reason_lines(score["reasons"]))
                    or "No reasons were stored with this score.")
        try:
            model = workbench.scorer(score["model_id"])
            explanation = review_view.case_explanation(model, score["features"])
            st.altair_chart(shap_charts.waterfall(explanation), width="stretch")
        except FraudcoreError as exc:
            st.info(f"No full waterfall: {exc}")
        st.caption(f"Scored by `{score['model_id']}` at {score['scored_at']:%Y-%m-%d %H:%M:%S} UTC")
with event_tab:
    st.dataframe(review_view.event_fields(detail.event), hide_index=True)
    if score is not None and score["features"]:
        with st.expander("Model inputs (point-in-time features)"):
            st.json(score["features"], expanded=False)
with history_tab:
    history = review_view.history_frame(detail.history)
    if history.empty:
        st.info("No history: the event has no stored entity values the store indexes.")
    else:
        cuts = (scorer.tiers.medium.threshold, scorer.tiers.high.threshold) if scorer is not None else None
        st.altair_chart(review_charts.history_timeline(history, cuts))
        st.dataframe(history, hide_index=True, column_config={
            "case_id": st.column_config.NumberColumn("case", format="%d"),
            "score": st.column_config.NumberColumn(format="%.3f"),
            "event_time": st.column_config.DatetimeColumn("event time", format="YYYY-MM-DD HH:mm")})
with similar_tab:
    found = similar(str(store.path), int(case_id), review_view.decisions_version(store), store)
    st.markdown(f"**{found.summary[0].upper() + found.summary[1:]}**")
    if found.compared:
        st.caption(f"Nearest by the model inputs among the latest {found.compared:,} decided cases.")
        st.dataframe(review_view.similar_table(found), hide_index=True, column_config={
            "case_id": st.column_config.NumberColumn("case", format="%d"),
            "distance": st.column_config.NumberColumn(format="%.2f"),
            "risk": st.column_config.NumberColumn(format="%.3f")})
with audit_tab:
    trail = review_view.audit_table(detail.audit)
    if trail.empty:
        st.info("Nobody has acted on this case yet.")
    else:
        st.dataframe(trail, hide_index=True, key="rq_audit")
