"""Fraud Workbench core library: data contract, simulator, features, models, scoring, store, feed."""
