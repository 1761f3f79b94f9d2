"""The store's tables. Record columns follow :class:`core.CompletionRecord` exactly.

Prompts are kept once per distinct text in ``prompts`` (keyed by SHA-256 of the UTF-8
text); records point at them by ``prompt_sha256``, and so do embeddings, which are
keyed by ``(prompt_sha256, encoder_id)``.
"""

from __future__ import annotations

from collections.abc import Mapping

from core import FieldSpec, field_specs

#: 2: the drift inbox and alert claims (:data:`COORDINATION_DDL`), added to older files.
#: 3: the drift judge's persisted state (``drift_state``, also in :data:`COORDINATION_DDL`).
#: 4: the tokens-in-flight record columns (:data:`ADDED_RECORD_FIELDS`), added in place.
SCHEMA_VERSION = 4

DUCKDB_TYPES: dict[str, str] = {
    "str": "VARCHAR",
    "int": "BIGINT",
    "float": "DOUBLE",
    "timestamp": "TIMESTAMPTZ",
}

#: Record columns as stored: every record field but ``prompt`` (kept in ``prompts``).
STORED_FIELDS: tuple[FieldSpec, ...] = tuple(s for s in field_specs() if s.name != "prompt")


#: Record fields added after the first schema: an older ``records`` table gains them
#: (nullable, so its rows read as "not reported") when the store opens.
ADDED_RECORD_FIELDS: tuple[FieldSpec, ...] = tuple(
    s for s in STORED_FIELDS if s.name in ("prefill_tokens_in_flight", "decode_tokens_in_flight")
)


def add_record_columns(types: Mapping[str, str]) -> tuple[str, ...]:
    """Idempotent ``ALTER TABLE`` statements adding :data:`ADDED_RECORD_FIELDS`.

    Args:
        types: SQL type of each field kind in the dialect (DuckDB and PostgreSQL both
            accept ``ADD COLUMN IF NOT EXISTS``).
    """
    return tuple(
        f"ALTER TABLE records ADD COLUMN IF NOT EXISTS {s.name} {types[s.kind]}"
        for s in ADDED_RECORD_FIELDS
    )


def record_columns(types: Mapping[str, str]) -> str:
    """The ``records`` table's column definitions, one a line, in a dialect's ``types``.

    Args:
        types: SQL type of each field kind (``str``, ``int``, ``float``, ``timestamp``),
            e.g. :data:`DUCKDB_TYPES`.
    """
    cols = []
    for spec in STORED_FIELDS:
        null = " NOT NULL" if spec.required else ""
        key = " PRIMARY KEY" if spec.name == "request_id" else ""
        cols.append(f"    {spec.name} {types[spec.kind]}{null}{key}")
        if spec.name == "device":
            cols.append(f"    prompt_sha256 {types['str']}")
    cols += [
        f"    completed_at {types['timestamp']}",
        f"    source {types['str']}",
        f"    ingested_at {types['timestamp']} NOT NULL",
    ]
    return ",\n".join(cols)


DDL: tuple[str, ...] = (
    "CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR NOT NULL)",
    f"CREATE TABLE IF NOT EXISTS records (\n{record_columns(DUCKDB_TYPES)}\n)",
    "CREATE TABLE IF NOT EXISTS prompts (sha256 VARCHAR PRIMARY KEY, text VARCHAR NOT NULL)",
    """CREATE TABLE IF NOT EXISTS embeddings (
    prompt_sha256 VARCHAR NOT NULL,
    encoder_id VARCHAR NOT NULL,
    vector FLOAT[] NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (prompt_sha256, encoder_id)
)""",
    "CREATE SEQUENCE IF NOT EXISTS ingest_log_seq",
    """CREATE TABLE IF NOT EXISTS ingest_log (
    id BIGINT PRIMARY KEY DEFAULT nextval('ingest_log_seq'),
    source VARCHAR,
    started_at TIMESTAMPTZ NOT NULL,
    finished_at TIMESTAMPTZ NOT NULL,
    accepted BIGINT NOT NULL,
    duplicates BIGINT NOT NULL,
    rejected BIGINT NOT NULL
)""",
)

#: Drift monitoring (feature_store/_drift.py): events, the alert outbox, its delivery log
#: and saved reports. Created with the other tables; idempotent like them.
DRIFT_DDL: tuple[str, ...] = (
    """CREATE TABLE IF NOT EXISTS drift_events (
    event_id VARCHAR PRIMARY KEY,
    served_model VARCHAR NOT NULL,
    prompt_class VARCHAR NOT NULL,
    device VARCHAR NOT NULL,
    kind VARCHAR NOT NULL,
    occurred_at TIMESTAMPTZ NOT NULL,
    model_version VARCHAR,
    n_samples BIGINT NOT NULL,
    statistics VARCHAR NOT NULL,
    recorded_at TIMESTAMPTZ NOT NULL
)""",
    """CREATE TABLE IF NOT EXISTS alert_outbox (
    alert_id VARCHAR PRIMARY KEY,
    event_id VARCHAR NOT NULL,
    url VARCHAR NOT NULL,
    body VARCHAR NOT NULL,
    attempts INTEGER NOT NULL,
    next_attempt_at TIMESTAMPTZ,
    created_at TIMESTAMPTZ NOT NULL,
    delivered_at TIMESTAMPTZ,
    status VARCHAR NOT NULL
)""",
    """CREATE TABLE IF NOT EXISTS alert_deliveries (
    alert_id VARCHAR NOT NULL,
    attempt INTEGER NOT NULL,
    attempted_at TIMESTAMPTZ NOT NULL,
    status_code INTEGER,
    error VARCHAR,
    delivered BOOLEAN NOT NULL,
    duration_s DOUBLE NOT NULL,
    PRIMARY KEY (alert_id, attempt)
)""",
    """CREATE TABLE IF NOT EXISTS drift_reports (
    report_id VARCHAR PRIMARY KEY,
    served_model VARCHAR NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    path VARCHAR NOT NULL,
    reference_rows BIGINT NOT NULL,
    current_rows BIGINT NOT NULL,
    mlflow_run_id VARCHAR,
    summary VARCHAR NOT NULL
)""",
)

#: Coordination between processes (feature_store/_coordination.py): the drift inbox (every
#: newly stored completion with a latency, enqueued by its ingest, until a judge acks it)
#: the claim columns of the alert outbox, and the drift judge's state (one JSON text per
#: drift group and one for the judge, so a judge that starts continues the judgement),
#: after the record columns added since the first schema.
#: Runs after :data:`DRIFT_DDL` on every open, so an older file gains them in place.
COORDINATION_DDL: tuple[str, ...] = (
    *add_record_columns(DUCKDB_TYPES),
    "CREATE SEQUENCE IF NOT EXISTS drift_inbox_seq",
    """CREATE TABLE IF NOT EXISTS drift_inbox (
    request_id VARCHAR PRIMARY KEY,
    seq BIGINT NOT NULL DEFAULT nextval('drift_inbox_seq'),
    enqueued_at TIMESTAMPTZ NOT NULL
)""",
    "ALTER TABLE alert_outbox ADD COLUMN IF NOT EXISTS claimed_by VARCHAR",
    "ALTER TABLE alert_outbox ADD COLUMN IF NOT EXISTS claimed_until TIMESTAMPTZ",
    """CREATE TABLE IF NOT EXISTS drift_state (
    key VARCHAR PRIMARY KEY,
    state VARCHAR NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
)""",
)
