"""Fraud Workbench core library: data contract, simulator, features, models, scoring, store, feed.

Never imports streamlit: the app applies caching and layout at the edge.
"""

__version__ = "0.1.0"
