"""The PostgreSQL store's schema as numbered migrations, applied once per database.

Tables mirror the DuckDB store's (:mod:`feature_store._schema`): record columns follow
:class:`core.CompletionRecord` exactly, prompts are kept once per SHA-256, embeddings
are keyed by ``(prompt_sha256, encoder_id)``. On top come the coordination tables of
the shared store (``docs/decisions/2026-12-06-shared-store.md``): outbox claims, the
drift inbox and the drift judge's state.

Every :class:`~feature_store.PostgresStore` calls :func:`migrate` when it opens. The
migrations run in one transaction under a transaction-scoped advisory lock, so replicas
starting together serialize on it: the first applies what is missing, the others find
every version recorded in ``schema_migrations`` and apply nothing. A migration is
never edited once released; a schema change is a new, higher-numbered entry.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import psycopg
from psycopg.rows import TupleRow

from feature_store._schema import add_record_columns, record_columns

PG_TYPES: dict[str, str] = {
    "str": "text",
    "int": "bigint",
    "float": "double precision",
    "timestamp": "timestamptz",
}

#: The advisory-lock key migrations run under (a fixed 64-bit value of a fixed name).
MIGRATION_LOCK_KEY: int = int.from_bytes(
    hashlib.sha256(b"tailcast:schema-migrations").digest()[:8], "big", signed=True
)


@dataclass(frozen=True, slots=True)
class Migration:
    """One schema change: a version (applied in increasing order) and its statements."""

    version: int
    name: str
    statements: tuple[str, ...]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "records, prompts, embeddings, ingest log",
        (
            "CREATE TABLE meta (key text PRIMARY KEY, value text NOT NULL)",
            f"CREATE TABLE records (\n{record_columns(PG_TYPES)}\n)",
            # In the exact order endpoint_stats reads (newest completions first, ties by
            # request_id in byte order), so it is a backward scan with no sort.
            "CREATE INDEX records_endpoint ON records "
            '(served_model, device, completed_at, request_id COLLATE "C") '
            "WHERE latency_s IS NOT NULL",
            # Records arrive roughly in submission order: a BRIN index narrows frame
            # windows at almost no cost to ingest (a B-tree here costs ~15% of it).
            "CREATE INDEX records_submitted ON records USING brin (submitted_at)",
            "CREATE TABLE prompts (sha256 text PRIMARY KEY, text text NOT NULL)",
            # vector: the float32 values, little-endian, 4 bytes each.
            """CREATE TABLE embeddings (
    prompt_sha256 text NOT NULL,
    encoder_id text NOT NULL,
    vector bytea NOT NULL,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (prompt_sha256, encoder_id)
)""",
            """CREATE TABLE ingest_log (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source text,
    started_at timestamptz NOT NULL,
    finished_at timestamptz NOT NULL,
    accepted bigint NOT NULL,
    duplicates bigint NOT NULL,
    rejected bigint NOT NULL
)""",
        ),
    ),
    Migration(
        2,
        "drift events, alert outbox, delivery log, drift reports",
        (
            """CREATE TABLE drift_events (
    event_id text PRIMARY KEY,
    served_model text NOT NULL,
    prompt_class text NOT NULL,
    device text NOT NULL,
    kind text NOT NULL,
    occurred_at timestamptz NOT NULL,
    model_version text,
    n_samples bigint NOT NULL,
    statistics text NOT NULL,
    recorded_at timestamptz NOT NULL
)""",
            """CREATE TABLE alert_outbox (
    alert_id text PRIMARY KEY,
    event_id text NOT NULL,
    url text NOT NULL,
    body text NOT NULL,
    attempts integer NOT NULL,
    next_attempt_at timestamptz,
    created_at timestamptz NOT NULL,
    delivered_at timestamptz,
    status text NOT NULL
)""",
            "CREATE INDEX alert_outbox_due ON alert_outbox (next_attempt_at) "
            "WHERE status = 'pending'",
            """CREATE TABLE alert_deliveries (
    alert_id text NOT NULL,
    attempt integer NOT NULL,
    attempted_at timestamptz NOT NULL,
    status_code integer,
    error text,
    delivered boolean NOT NULL,
    duration_s double precision NOT NULL,
    PRIMARY KEY (alert_id, attempt)
)""",
            """CREATE TABLE drift_reports (
    report_id text PRIMARY KEY,
    served_model text NOT NULL,
    created_at timestamptz NOT NULL,
    path text NOT NULL,
    reference_rows bigint NOT NULL,
    current_rows bigint NOT NULL,
    mlflow_run_id text,
    summary text NOT NULL
)""",
        ),
    ),
    Migration(
        3,
        "outbox claims (one deliverer per alert for a lease)",
        (
            "ALTER TABLE alert_outbox ADD COLUMN claimed_by text, "
            "ADD COLUMN claimed_until timestamptz",
        ),
    ),
    Migration(
        4,
        "drift inbox (completions waiting for the drift judge)",
        (
            # Only records newly stored by the same statement are enqueued, so a
            # request_id is in the inbox at most once without a unique index; the hash
            # index serves acknowledgements (cheaper to maintain than a B-tree).
            """CREATE TABLE drift_inbox (
    seq bigint GENERATED ALWAYS AS IDENTITY (CACHE 1000) PRIMARY KEY,
    request_id text NOT NULL
)""",
            "CREATE INDEX drift_inbox_request ON drift_inbox USING hash (request_id)",
        ),
    ),
    Migration(
        5,
        "drift judge state (one JSON text per drift group, one for the judge)",
        (
            """CREATE TABLE drift_state (
    key text PRIMARY KEY,
    state text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
)""",
        ),
    ),
    Migration(
        6,
        "tokens in flight on records (prefill and decode, nullable)",
        # IF NOT EXISTS: migration 1 of a new database already creates them.
        add_record_columns(PG_TYPES),
    ),
    Migration(
        7,
        "workflow index on records (the drift judge's workflow features)",
        (
            # Only workflow calls; the judge windows just the workflows of its batch.
            "CREATE INDEX IF NOT EXISTS records_workflow ON records "
            "(served_model, workflow_id) WHERE workflow_id IS NOT NULL",
        ),
    ),
)

#: The schema version a fully migrated database is at.
SCHEMA_VERSION: int = MIGRATIONS[-1].version


def migrate(conn: psycopg.Connection[TupleRow]) -> list[int]:
    """Apply the migrations ``conn``'s database lacks, exactly once across processes.

    Runs in one transaction holding ``pg_advisory_xact_lock(MIGRATION_LOCK_KEY)``: a
    concurrent caller waits for it, then sees the versions it recorded. A failing
    migration rolls back every migration of the call.

    Args:
        conn: A connection not inside a transaction.

    Returns:
        The versions this call applied (empty when the schema was current).
    """
    applied: list[int] = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", [MIGRATION_LOCK_KEY])
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, "
            "name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {int(v) for (v,) in conn.execute("SELECT version FROM schema_migrations")}
        for migration in MIGRATIONS:
            if migration.version in done:
                continue
            for statement in migration.statements:
                conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                [migration.version, migration.name],
            )
            applied.append(migration.version)
        if applied:
            conn.execute(
                "INSERT INTO meta VALUES ('schema_version', %s) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                [str(max(m.version for m in MIGRATIONS))],
            )
    return applied
