"""The store's versioned schema: migration N brings a file from version N - 1 to N, applied in order on open."""

from __future__ import annotations

__all__ = ["MIGRATIONS", "SCHEMA_VERSION"]

MIGRATIONS: list[list[str]] = [
    [  # 1: events, their entity values, scores, quarantine, feed cursors, review cases and decisions
        """CREATE TABLE IF NOT EXISTS events (event_id VARCHAR PRIMARY KEY, event_time TIMESTAMP NOT NULL,
           amount DOUBLE, label INTEGER, raw VARCHAR NOT NULL, stored_at TIMESTAMP NOT NULL)""",
        # one 'entity=value' key column: DuckDB's ART index serves single-column equality lookups only
        """CREATE TABLE IF NOT EXISTS event_entities (entity_key VARCHAR NOT NULL, event_time TIMESTAMP NOT NULL,
           event_id VARCHAR NOT NULL)""",
        "CREATE INDEX IF NOT EXISTS event_entities_lookup ON event_entities (entity_key)",
        """CREATE TABLE IF NOT EXISTS scores (event_id VARCHAR NOT NULL, model_id VARCHAR NOT NULL,
           score DOUBLE NOT NULL, tier VARCHAR, reasons JSON, scored_at TIMESTAMP NOT NULL)""",
        "CREATE SEQUENCE IF NOT EXISTS quarantine_ids",
        """CREATE TABLE IF NOT EXISTS quarantine (quarantine_id BIGINT DEFAULT nextval('quarantine_ids'),
           source VARCHAR NOT NULL, reason VARCHAR NOT NULL, payload VARCHAR NOT NULL,
           received_at TIMESTAMP NOT NULL)""",
        """CREATE TABLE IF NOT EXISTS feed_state (feed VARCHAR PRIMARY KEY, cursor VARCHAR,
           updated_at TIMESTAMP NOT NULL)""",
        "CREATE SEQUENCE IF NOT EXISTS case_ids",
        """CREATE TABLE IF NOT EXISTS cases (case_id BIGINT PRIMARY KEY DEFAULT nextval('case_ids'),
           event_id VARCHAR NOT NULL UNIQUE, tier VARCHAR, risk DOUBLE, amount DOUBLE, opened_at TIMESTAMP NOT NULL,
           status VARCHAR NOT NULL DEFAULT 'open', assignee VARCHAR)""",
        "CREATE SEQUENCE IF NOT EXISTS decision_ids",
        """CREATE TABLE IF NOT EXISTS decisions (decision_id BIGINT PRIMARY KEY DEFAULT nextval('decision_ids'),
           case_id BIGINT NOT NULL, analyst VARCHAR NOT NULL, "at" TIMESTAMP NOT NULL, action VARCHAR NOT NULL,
           note VARCHAR)""",
    ],
    [  # 2: the model inputs each score used (drift, similar cases), shadow (challenger) scores, lookups by event
        "ALTER TABLE scores ADD COLUMN features JSON",
        "ALTER TABLE scores ADD COLUMN shadow BOOLEAN DEFAULT false",
        "CREATE INDEX IF NOT EXISTS scores_by_event ON scores (event_id)",
    ],
    [  # 3: the model inputs as packed numbers and a JSON list of category labels, with their names once per layout
        """CREATE TABLE IF NOT EXISTS input_layouts (layout_id VARCHAR PRIMARY KEY, names VARCHAR[] NOT NULL,
           categorical BOOLEAN[] NOT NULL, created_at TIMESTAMP NOT NULL)""",
        "ALTER TABLE scores ADD COLUMN layout_id VARCHAR",
        "ALTER TABLE scores ADD COLUMN inputs BLOB",  # float64 little-endian, NaN when missing (store_inputs)
        "ALTER TABLE scores ADD COLUMN labels VARCHAR",  # a JSON array, null without categorical inputs
    ],
]
SCHEMA_VERSION = len(MIGRATIONS)
SCHEMA_VERSION = len(MIGRATIONS)
