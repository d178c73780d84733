"""Live: start and stop the poller on the embedded simulator feed or any feed URL; watch throughput, lag, tiers per
minute and errors as they happen; browse the quarantined records with their reasons."""

import streamlit as st

from fraudcore import live_charts, live_view, runtime
from fraudcore.errors import FraudcoreError, ModelArtifactError

SOURCES = ["Embedded simulator feed", "Another feed URL"]
WINDOWS = [5, 15, 60]
PAGE_SIZE = 25
TIER_BADGES = {"high": ":red-badge[high]", "medium": ":orange-badge[medium]", "low": ":green-badge[low]"}

workbench = runtime.current()


def champion_problem() -> str | None:
    """Why the poller cannot score right now (None: the champion loads)."""
    try:
        if workbench.champion_id() is None:
            return "none"
        workbench.scorer()
    except ModelArtifactError as exc:
        return str(exc)
    return None


def open_store():
    try:
        return workbench.store()
    except FraudcoreError as exc:
        st.error(f"The workbench database cannot be read: {exc}")
        st.stop()


@st.fragment(run_every="2s")
def live_status(window: int, alerts_only: bool) -> None:
    """The poller's state and counters, the store's totals and the tiers per minute, refreshed every 2 s."""
    status = live_view.live_status(workbench)
    poller = status.poller
    if poller is None:
        st.info("The poller is not running. Pick a feed above and press **Start**.")
    else:
        state = ":red-badge[Stalled]" if status.stalled else ":green-badge[Running]" if status.running else \
            ":gray-badge[Stopped]"
        feed = f"`{poller['feed']}`" if poller["feed"] else "(not reached yet)"
        cursor = f"`{poller['cursor']}`" if poller["cursor"] else "none yet"
        st.markdown(f"{state} · feed {feed} at {poller['url']} · cursor {cursor}")
        rate, lag, stored, quarantined, errors, duplicates = st.columns(6)
        rate.metric("Events/s", f"{poller['events_per_s'] if status.running else 0:,.1f}",
                    help="Records read per second over the last 10 s")
        lag.metric("Lag", "—" if poller["lag"] is None else f"{poller['lag']:,}",
                   help="Events the feed could send right now (— : an endless, unpaced feed does not say)")
        stored.metric("Stored", f"{poller['stored']:,}", help="New events scored and stored by this run")
        quarantined.metric("Quarantined", f"{poller['quarantined']:,}",
                           help="Records this run kept aside with their reason (browse them below)")
        errors.metric("Errors", f"{poller['errors']:,}", help="Failed requests or writes, each retried with backoff")
        duplicates.metric("Duplicates", f"{poller['duplicates']:,}", help="Events seen again and not stored twice")
        tiers = " · ".join(f"{TIER_BADGES.get(t, t)} {poller['by_tier'].get(t, 0):,}" for t in live_view.TIERS)
        st.markdown(f"**This run by tier** · {tiers} · {poller['events']:,} records in {poller['batches']:,} pages "
                    f"over {poller['seconds']:,.0f} s")
        storage = live_view.storage_line(status.storage)
        if storage:
            st.caption(storage, help="Each commit waits for the disk to confirm the write (fsync); a slow disk shows "
                                     "in the longest commits, and events wait behind them")
        if poller["last_error"]:
            alert = st.error if status.stalled else st.warning
            stalled = f"**Stalled:** the last {poller['failing']} tries failed and nothing new is stored.  \n" \
                if status.stalled else ""
            alert(f"{stalled}**Last error:** {poller['last_error']}  \n**What to do:** "
                  f"{live_view.error_advice(poller['last_error'])}")
        if status.total_reached:
            st.info(f"The embedded feed has sent all {status.feed_options.total:,} events it was asked for (counted "
                    "from its start). Raise **Events in all** (or set 0 for endless) and start again for more.")
    store = open_store()
    totals = live_view.live_totals(store)
    st.caption(f"The store holds {totals['events']:,} events (live scores: {totals['high']:,} high, "
               f"{totals['medium']:,} medium, {totals['low']:,} low) and {totals['quarantined']:,} quarantined "
               "records.")
    counts = live_view.tier_minutes(store, window)
    st.altair_chart(live_charts.tier_minutes_chart(counts, alerts_only), width="stretch")


@st.fragment(run_every="5s")
def quarantine_browser() -> None:
    """Quarantined records by offending field, and page by page (newest first) with their reasons."""
    store = open_store()
    sources = live_view.quarantine_sources(store)
    if not sources:
        st.caption("No quarantined records: every record received so far met the model's contract.")
        return
    picked = st.selectbox("Source", ["All sources", *sources], key="live_q_source")
    source = None if picked == "All sources" else picked
    st.dataframe(live_view.quarantine_reasons(store, source), hide_index=True,
                 column_config={"field": "Offending field", "records": "Records", "example": "Example reason"})
    pages = max(1, -(-live_view.quarantine_count(store, source) // PAGE_SIZE))
    if st.session_state.get("live_q_page", 1) > pages:
        st.session_state["live_q_page"] = pages
    page = st.number_input(f"Page (of {pages:,})", min_value=1, max_value=pages, step=1, key="live_q_page")
    rows, total = live_view.quarantine_page(store, page, PAGE_SIZE, source)
    first = (page - 1) * PAGE_SIZE + 1
    st.caption(f"Records {first:,}–{first + len(rows) - 1:,} of {total:,}, newest first; payloads cut at "
               f"{live_view.EXCERPT_CHARS} characters.")
    st.dataframe(rows, hide_index=True, column_config={
        "id": st.column_config.NumberColumn("id", format="%d"),
        "received_at": st.column_config.DatetimeColumn("Received (UTC)", format="YYYY-MM-DD HH:mm:ss"),
        "source": "Source", "reason": st.column_config.TextColumn("Reason", width="large"),
        "payload": st.column_config.TextColumn("Payload (excerpt)", width="large")})


st.title("Live")
st.caption("The poller reads the feed page by page, scores each event with the champion and stores it with its "
           "tier; review cases open for medium and high. It keeps running when you leave this page (the sidebar "
           "shows its lag) and stops with the app.")

problem = champion_problem()
if problem == "none":
    st.warning("The poller scores every event with the champion model, and there is none yet. Train a model and "
               "promote it, or let the first run on Home set up a default champion.")
    st.page_link("pages/train.py", label="Train a model", icon=":material/model_training:")
    st.page_link("pages/home.py", label="Home — first run", icon=":material/home:")
elif problem:
    st.error(f"The champion cannot be loaded, so the poller cannot score: {problem}  \n**What to do:** promote "
             "a working model on the Compare & thresholds page.")

st.subheader("Feed")
source = st.radio("Source", SOURCES, horizontal=True, key="live_source")
url, options = None, None
if source == SOURCES[0]:
    rate_col, total_col, error_col, malformed_col = st.columns(4)
    rate = rate_col.number_input("Events per second", min_value=0.0, max_value=live_view.MAX_RATE, value=50.0,
                                 step=10.0, key="live_rate", help="How fast the feed releases events; 0: as fast "
                                                                  "as the poller reads")
    total = total_col.number_input("Events in all", min_value=0, value=0, step=100, key="live_total",
                                   help="The feed stops after this many events, counted from its start "
                                        "(it continues the demo data's world); 0: endless")
    error_rate = error_col.slider("Error rate", 0.0, 0.5, 0.0, 0.01, key="live_error_rate",
                                  help="Share of requests answered 500/503; the poller counts and retries them")
    malformed = malformed_col.slider("Malformed rate", 0.0, 0.5, 0.0, 0.01, key="live_malformed_rate",
                                     help="Share of events sent broken or breaking the schema; they are quarantined")
    status = live_view.live_status(workbench)
    if status.feed_url:
        st.caption(f"The embedded feed serves at {status.feed_url} (loopback only).")
    else:
        st.caption("The embedded feed starts on a free loopback port (127.0.0.1) when you press Start.")
else:
    url = st.text_input("Feed URL", key="live_url", placeholder="http://127.0.0.1:8765",
                        help="A feed answering GET /events?after=<cursor>&limit=<n> and /health, e.g. "
                             "`python -m fraudcore feed serve`").strip()

running = live_view.live_status(workbench).running
start_col, stop_col = st.columns(2)
start = start_col.button("Restart with these settings" if running else "Start", type="primary", key="live_start",
                         disabled=problem is not None or (source == SOURCES[1] and not url), width="stretch")
stop = stop_col.button("Stop", key="live_stop", width="stretch")
if start:
    try:
        if source == SOURCES[0]:
            options = live_view.feed_options(rate, error_rate, malformed, total)
        with st.spinner("Starting the feed and the poller (a first start stores the demo history the feed continues)…"):
            live_view.start_live(workbench, url or None, options)
        st.session_state["live_flash"] = ("success", "Polling started.")
    except (FraudcoreError, ValueError) as exc:
        st.session_state["live_flash"] = ("error", f"Could not start: {exc}")
    st.rerun()  # the buttons, the feed's address and the sidebar show the new state
if stop:
    with st.spinner("Stopping…"):
        stopped = live_view.stop_live(workbench)
    st.session_state["live_flash"] = ("success", "Stopped. Start again to resume from the stored cursor: nothing "
                                                 "is lost or stored twice." if stopped else "Nothing was running.")
    st.rerun()
flash = st.session_state.pop("live_flash", None)
if flash:
    (st.error if flash[0] == "error" else st.success)(flash[1])

st.subheader("Status")
window_col, alerts_col = st.columns([3, 1], vertical_alignment="bottom")
window = window_col.segmented_control("Last", WINDOWS, default=15, format_func=lambda m: f"{m} min",
                                      key="live_window") or 15
alerts_only = alerts_col.toggle("Alerts only", key="live_alerts_only", help="Show medium and high only")
live_status(window, alerts_only)

st.subheader("Quarantine")
quarantine_browser()
