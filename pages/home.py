"""Home: what the workbench is, where its files are, and the demo data."""

import streamlit as st

from fraudcore.config import DEMO_ROWS, get_paths

paths = get_paths()

st.title("Fraud Workbench")
st.markdown(
    """
An analyst workbench for fraud teams at card issuers and e-commerce shops: load transactions, explore fraud against
legitimate traffic, build point-in-time velocity features, train and compare models, tune thresholds into
low / medium / high tiers, score events with exact reasons, and work a live review queue.

**Demo data.** The workbench ships a simulator of card-present and card-not-present transactions: customers with
their own spending habits, geography and hours; merchants with their own amount profiles; and five fraud patterns —
compromised terminals, compromised cards, card testing, account takeover and abnormal amounts (about 1 % fraud).
"""
)

col_data, col_models, col_db = st.columns(3)
col_data.metric("Data folder", paths.data.name, help=str(paths.data))
col_models.metric("Artifacts folder", paths.artifacts.name, help=str(paths.artifacts))
col_db.metric("Workbench database", paths.db.name, help=str(paths.db))

if paths.demo_dataset.is_file():
    st.success(f"Demo dataset ready: `{paths.demo_dataset.name}`")
else:
    st.info(f"No demo dataset yet: `python -m fraudcore generate --out {paths.demo_dataset} --rows {DEMO_ROWS}`")
