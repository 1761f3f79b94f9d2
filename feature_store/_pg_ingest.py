"""Ingest into PostgreSQL: validate in an in-memory DuckDB, COPY, insert idempotently.

Each raw batch is typed and validated by the embedded store's SQL
(:func:`feature_store._staging.stage`) in a private in-memory DuckDB, so both
backends accept, reject and explain exactly alike. DuckDB also derives what the
embedded store derives (``prompt_sha256`` = hex SHA-256 of the UTF-8 prompt,
``completed_at`` = ``submitted_at + latency_s`` to the microsecond) and keeps the
first of repeated ``request_id`` values, in a thread of its own, one slice ahead of
PostgreSQL. The valid rows then go to PostgreSQL with
one ``COPY`` into a temporary table and one ``INSERT ... ON CONFLICT (request_id) DO
NOTHING RETURNING request_id``, which also enqueues the newly stored rows that carry
a latency in ``drift_inbox`` (same statement, so same transaction).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from psycopg import Cursor
from psycopg.rows import TupleRow

from core import IngestReport, Rejection
from feature_store._pg_arrow import copy_from_arrow
from feature_store._pg_schema import PG_TYPES
from feature_store._schema import STORED_FIELDS
from feature_store._staging import stage

_STORED = [s.name for s in STORED_FIELDS]
_COLS = ", ".join(_STORED)
_STAGE = "_tailcast_stage"
_PROMPTS = "_tailcast_prompts"
#: Inputs validated and inserted at a time (PostgreSQL inserts one slice while DuckDB
#: validates the next).
SLICE_ROWS = 25_000


def create_staging_tables(cur: Cursor[TupleRow]) -> None:
    """Create this transaction's temporary staging tables (dropped on commit).

    Also lets the transaction sort a batch in memory (``work_mem``).
    """
    cur.execute("SET LOCAL work_mem = '64MB'")
    typed = ", ".join(f"{s.name} {PG_TYPES[s.kind]}" for s in STORED_FIELDS)
    cur.execute(
        f"CREATE TEMP TABLE {_STAGE} ({typed}, prompt_sha256 text, completed_at timestamptz, "
        "_idx bigint NOT NULL) ON COMMIT DROP"
    )
    cur.execute(f"CREATE TEMP TABLE {_PROMPTS} (sha256 text, text text) ON COMMIT DROP")


@dataclass(frozen=True)
class Prepared:
    """One slice of a raw batch, validated and shaped for PostgreSQL (no PostgreSQL yet).

    Attributes:
        offset: Inputs of the same ingest before this slice (for indices).
        inputs: Inputs in the slice.
        rejections: The slice's rejected inputs (indices over the whole ingest).
        rows: Valid rows to insert, the first of each repeated ``request_id``, with
            ``_idx`` (position in the slice).
        prompts: Distinct prompts of the valid rows (``sha256``, ``text``).
    """

    offset: int
    inputs: int
    rejections: tuple[Rejection, ...]
    rows: pa.Table
    prompts: pa.Table


def prepare(duck: duckdb.DuckDBPyConnection, batch: pa.Table, offset: int) -> Prepared:
    """Validate one raw slice in DuckDB (see :func:`feature_store._staging.stage`).

    Raises:
        StoreError: When the batch has unknown columns or no ``_line``.
    """
    rejections = stage(duck, batch, offset)
    rows = duck.sql(
        f"SELECT {_COLS}, CASE WHEN prompt IS NULL THEN NULL ELSE sha256(prompt) END "
        "AS prompt_sha256, submitted_at + to_microseconds(CAST(round(latency_s * 1e6) AS "
        "BIGINT)) AS completed_at, _idx FROM _staged WHERE _reject_reason IS NULL "
        "QUALIFY row_number() OVER (PARTITION BY request_id ORDER BY _idx) = 1 ORDER BY _idx"
    ).to_arrow_table()
    prompts = duck.sql(
        "SELECT DISTINCT sha256(prompt) AS sha256, prompt AS text FROM _staged "
        "WHERE _reject_reason IS NULL AND prompt IS NOT NULL"
    ).to_arrow_table()
    duck.execute("DROP TABLE _staged")
    return Prepared(offset, batch.num_rows, rejections, rows, prompts)


def prepared_slices(batches: Iterable[pa.Table], rows: int = SLICE_ROWS) -> Iterator[Prepared]:
    """Validate raw batches in slices of at most ``rows`` inputs, in a private DuckDB.

    Slices are small so that PostgreSQL inserts one while the next is validated
    (:func:`feature_store._prefetch.prefetch` runs this generator in its own thread).
    """
    duck = duckdb.connect()
    try:
        duck.execute("SET TimeZone = 'UTC'")
        offset = 0
        for batch in batches:
            for start in range(0, max(batch.num_rows, 1), rows):
                part = batch.slice(start, rows)
                yield prepare(duck, part, offset)
                offset += part.num_rows
    finally:
        duck.close()


def store_prepared(
    cur: Cursor[TupleRow], part: Prepared, source: str | None, judge: bool
) -> IngestReport:
    """Store a prepared slice through ``cur`` (inside the ingest's transaction).

    Args:
        cur: A PostgreSQL cursor after :func:`create_staging_tables`.
        part: The slice.
        source: Label stored with each record.
        judge: Enqueue the newly stored completions with a latency for the drift judge.
    """
    stored = _store(cur, part.rows, part.prompts, source, judge)
    valid = part.inputs - len(part.rejections)
    # Valid inputs not stored now (stored before, or repeating an earlier input).
    mask = np.ones(part.inputs, dtype=np.bool_)
    mask[[r.index - part.offset for r in part.rejections]] = False
    if stored:
        kept = pc.is_in(part.rows.column("request_id"), value_set=pa.array(stored, pa.string()))
        mask[part.rows.column("_idx").filter(kept).to_numpy()] = False
    return IngestReport(
        accepted=len(stored),
        duplicates=valid - len(stored),
        rejected=part.rejections,
        duplicate_indices=tuple(part.offset + int(i) for i in np.flatnonzero(mask)),
    )


def _store(
    cur: Cursor[TupleRow], rows: pa.Table, prompts: pa.Table, source: str | None, judge: bool
) -> list[str]:
    """Insert staged rows and prompts; the request ids newly stored."""
    if rows.num_rows == 0:
        return []
    cur.execute(f"TRUNCATE {_STAGE}, {_PROMPTS}")
    copy_from_arrow(cur, _PROMPTS, prompts)
    copy_from_arrow(cur, _STAGE, rows)
    # Keys are inserted in one global order (prompts, then records, each sorted by key)
    # so concurrent ingests of overlapping keys wait for each other but never deadlock.
    cur.execute(
        f"INSERT INTO prompts (sha256, text) SELECT sha256, text FROM {_PROMPTS} "
        'ORDER BY sha256 COLLATE "C" ON CONFLICT (sha256) DO NOTHING'
    )
    cur.execute(
        f"WITH ins AS (INSERT INTO records ({_COLS}, prompt_sha256, completed_at, source, "
        f"ingested_at) SELECT {_COLS}, prompt_sha256, completed_at, %s, now() FROM {_STAGE} "
        'ORDER BY request_id COLLATE "C" ON CONFLICT (request_id) DO NOTHING '
        "RETURNING request_id, latency_s), "
        "inbox AS (INSERT INTO drift_inbox (request_id) SELECT s.request_id FROM "
        f"{_STAGE} s JOIN ins ON ins.request_id = s.request_id WHERE ins.latency_s IS NOT NULL "
        "AND %s ORDER BY s._idx) SELECT request_id FROM ins",
        [source, judge],
    )
    return [str(r[0]) for r in cur.fetchall()]
