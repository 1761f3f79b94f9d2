"""The DuckDB half of every ingest: stage a raw batch, and find the duplicates after.

Both backends validate in DuckDB (the DuckDB store in its own file, PostgreSQL in a
private in-memory DuckDB, see :mod:`feature_store._pg_ingest`), so they accept, reject
and count duplicates alike. :func:`stage` types and validates a raw batch into the
temporary table ``_staged`` (one row per input, ``_idx`` its position in the batch);
once the backend has stored what it could, :func:`finish` names the valid inputs that
were not stored now (duplicates), drops ``_staged`` and reports the batch.
"""

from __future__ import annotations

import duckdb
import numpy as np
import pyarrow as pa

from core import IngestReport, Rejection, StoreError
from feature_store._validate import staging_sql, unknown_columns
from feature_store.importers._base import LINE

# Valid rows not stored now: the request id was stored before, or repeats an earlier row.
_DUPLICATES = (
    "SELECT _idx FROM _staged s WHERE _reject_reason IS NULL AND NOT ("
    "request_id IN (SELECT request_id FROM _stored) AND _idx = (SELECT "
    "min(_idx) FROM _staged f WHERE f.request_id = s.request_id "
    "AND f._reject_reason IS NULL)) ORDER BY _idx"
)


def arrow_kind(t: pa.DataType) -> str:
    """How the validator reads a raw column of type ``t``: timestamp, number or other."""
    if pa.types.is_timestamp(t) or pa.types.is_date(t):
        return "timestamp"
    if pa.types.is_integer(t) or pa.types.is_floating(t):
        return "number"
    return "other"


def stage(con: duckdb.DuckDBPyConnection, batch: pa.Table, offset: int) -> tuple[Rejection, ...]:
    """Validate ``batch`` into the temporary table ``_staged``; its rejected inputs.

    Args:
        con: A DuckDB connection (UTC) the batch is staged in.
        batch: A raw batch in the canonical layout (see :mod:`feature_store.importers`).
        offset: Inputs of the same call before this batch (for indices).

    Raises:
        StoreError: When the batch has unknown columns or no ``_line``.
    """
    unknown = unknown_columns(batch.column_names)
    if unknown or LINE not in batch.column_names:
        raise StoreError(f"raw batch has unknown columns {unknown} or no {LINE} column")
    kinds = {f.name: arrow_kind(f.type) for f in batch.schema}
    batch = batch.append_column("_idx", pa.array(np.arange(batch.num_rows), pa.int64()))
    con.register("_raw", batch)
    try:
        con.execute(f"CREATE OR REPLACE TEMP TABLE _staged AS {staging_sql('_raw', kinds)}")
    finally:
        con.unregister("_raw")
    rejected = con.execute(
        "SELECT _idx, _line, _reject_field, _reject_reason FROM _staged "
        "WHERE _reject_reason IS NOT NULL ORDER BY _idx"
    ).fetchall()
    return tuple(
        Rejection(index=offset + int(i), line=line, field=field, reason=reason)
        for i, line, field, reason in rejected
    )


def finish(
    con: duckdb.DuckDBPyConnection,
    batch: pa.Table,
    rejections: tuple[Rejection, ...],
    stored: pa.Table,
    offset: int,
) -> IngestReport:
    """The batch's report once its valid rows are stored; drops ``_staged``.

    Args:
        con: The connection holding ``_staged`` (see :func:`stage`).
        batch: The raw batch that was staged.
        rejections: What :func:`stage` rejected.
        stored: The request ids stored now (column ``request_id``).
        offset: Inputs of the same call before this batch.
    """
    valid = batch.num_rows - len(rejections)
    duplicates: tuple[int, ...] = ()
    if stored.num_rows < valid:  # valid rows not stored now: stored before or repeated
        con.register("_stored", stored)
        try:
            duplicates = tuple(offset + int(i) for (i,) in con.execute(_DUPLICATES).fetchall())
        finally:
            con.unregister("_stored")
    con.execute("DROP TABLE _staged")
    return IngestReport(
        accepted=stored.num_rows,
        duplicates=valid - stored.num_rows,
        rejected=rejections,
        duplicate_indices=duplicates,
    )
