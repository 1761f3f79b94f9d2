"""Training frames and endpoint features from PostgreSQL, with the embedded store's SQL.

A frame is built in two steps: the records it can depend on (and the prompts of its
rows) are copied out of PostgreSQL as Arrow in one snapshot, then registered under
the names ``records`` and ``prompts`` in an in-process DuckDB, where the same
:func:`feature_store._frames.training_frame_sql` as the embedded store runs. Training
code therefore has one SQL dialect, and both backends return the same frame.

The copy is narrowed in PostgreSQL only where that cannot change a feature. A frame
row of served model ``m`` submitted in ``[start, end)`` depends on

* itself;
* completions of the same (served_model, device) known at ``as_of`` that finished
  before it was submitted, through an endpoint window of at most ``window`` rows:
  every such completion finishing in ``[start, end)``, and before ``start`` only the
  last ``window`` of each (served_model, device);
* earlier calls of its workflow (same served_model and workflow_id), whenever they ran.

So the copy holds the rows, completions finishing at or after ``start`` (and
submitted before ``end``), the last ``window`` completions before ``start`` per
endpoint, and every record of the rows' workflows. The frame SQL then filters to the
rows exactly as in DuckDB.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import duckdb
import pyarrow as pa
from psycopg import Cursor
from psycopg.rows import TupleRow

from feature_store import _frames
from feature_store._pg_arrow import RECORD_TYPES, copy_to_arrow, select_exprs
from feature_store._schema import STORED_FIELDS

#: The records columns the frame SQL reads, with their Arrow types.
FRAME_RECORD_TYPES: dict[str, pa.DataType] = {
    **{s.name: RECORD_TYPES[s.name] for s in STORED_FIELDS},
    "prompt_sha256": pa.string(),
    "completed_at": pa.timestamp("us", tz="UTC"),
}
_PROMPT_TYPES: dict[str, pa.DataType] = {"sha256": pa.string(), "text": pa.string()}


def _conditions(
    served_model: str | None,
    start: datetime | None,
    end: datetime | None,
    as_of: datetime | None,
    window: int,
) -> tuple[str, list[Any], str, list[Any]]:
    """(records filter, params, frame-rows filter, params) over alias ``r``."""
    model = ["r.served_model = %s"] if served_model is not None else []
    model_p: list[Any] = [served_model] if served_model is not None else []
    rows, rows_p = list(model), list(model_p)
    if start is not None:
        rows.append("r.submitted_at >= %s")
        rows_p.append(start)
    if end is not None:
        rows.append("r.submitted_at < %s")
        rows_p.append(end)
    rows_sql = " AND ".join(rows) or "TRUE"
    if start is None and end is None:
        return rows_sql, rows_p, rows_sql, rows_p
    known = "r.latency_s IS NOT NULL" + (" AND r.completed_at <= %s" if as_of else "")
    known_p: list[Any] = [as_of] if as_of else []
    recent = [known]
    recent_p = list(known_p)
    if start is not None:
        recent.append("r.completed_at >= %s")
        recent_p.append(start)
    if end is not None:
        recent.append("r.submitted_at < %s")
        recent_p.append(end)
    parts = [f"({rows_sql})", f"({' AND '.join(recent)})"]
    params: list[Any] = [*model_p, *rows_p, *recent_p]
    if start is not None:
        parts.append(
            "r.request_id IN (SELECT request_id FROM (SELECT r.request_id, row_number() OVER "
            "(PARTITION BY r.served_model, r.device ORDER BY r.completed_at DESC, "
            'r.request_id COLLATE "C" DESC) AS n FROM records r WHERE '
            f"{' AND '.join([*model, known])} AND r.completed_at < %s) last WHERE n <= %s)"
        )
        params += [*model_p, *known_p, start, window]
    parts.append(
        "(r.served_model, r.workflow_id) IN (SELECT r.served_model, r.workflow_id FROM "
        f"records r WHERE {rows_sql} AND r.workflow_id IS NOT NULL)"
    )
    params += rows_p
    where = " AND ".join([*model, f"({' OR '.join(parts)})"])
    return where, params, rows_sql, rows_p


def training_frame(
    cur: Cursor[TupleRow],
    served_model: str | None,
    start: datetime | None,
    end: datetime | None,
    columns: Sequence[str] | None,
    *,
    as_of: datetime | None,
    require: Sequence[str],
    window: int,
) -> pa.Table:
    """Build a training frame (see :meth:`feature_store.RecordStore.training_frame`).

    Args:
        cur: A cursor on a connection not inside a transaction; the copies run in one
            read-only REPEATABLE READ transaction (one snapshot).
        served_model: Restrict to one served model (None: all).
        start: Inclusive lower bound on ``submitted_at``.
        end: Exclusive upper bound on ``submitted_at``.
        columns: Frame columns (default: all of :data:`feature_store.FRAME_COLUMNS`).
        as_of: The knowledge cut-off (already defaulted to ``end`` by the caller).
        require: Record columns that must be non-null.
        window: Completions the endpoint features look back over.

    Raises:
        ValueError: On an unknown column or a window below 1 (before any query).
    """
    sql, params = _frames.training_frame_sql(
        served_model, start, end, columns, as_of=as_of, require=require, window=window
    )
    where, where_p, rows_sql, rows_p = _conditions(served_model, start, end, as_of, window)
    wanted = FRAME_RECORD_TYPES
    with cur.connection.transaction():
        cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        records = copy_to_arrow(
            cur,
            f"SELECT {', '.join(select_exprs(wanted, 'r'))} FROM records r WHERE {where}",
            where_p,
            wanted,
        )
        if columns is None or "prompt" in columns:
            prompts = copy_to_arrow(
                cur,
                "SELECT p.sha256, p.text FROM prompts p WHERE p.sha256 IN "
                f"(SELECT r.prompt_sha256 FROM records r WHERE {rows_sql})",
                rows_p,
                _PROMPT_TYPES,
            )
        else:
            prompts = pa.schema(list(_PROMPT_TYPES.items())).empty_table()
    duck = duckdb.connect()
    try:
        duck.execute("SET TimeZone = 'UTC'")
        duck.register("records", records)
        duck.register("prompts", prompts)
        return duck.sql(sql, params=params).to_arrow_table()
    finally:
        duck.close()


def endpoint_stats_sql(window: int) -> str:
    """The rows :func:`feature_store._frames.endpoint_stats_sql` summarizes, in PostgreSQL.

    The last ``window`` completions of the endpoint finished strictly before ``at``
    (ties broken by ``request_id`` in byte order, as in DuckDB), one backward scan of
    the ``records_endpoint`` index. Columns: output_tokens / latency_s, latency_s.
    Parameters: served_model, device, at. Summarize them with :func:`median`.
    """
    if window < 1:
        raise ValueError("endpoint window must be >= 1")
    return (
        "SELECT output_tokens / latency_s, latency_s FROM records "
        "WHERE served_model = %s AND device = %s AND latency_s IS NOT NULL AND completed_at < %s "
        f'ORDER BY completed_at DESC, request_id COLLATE "C" DESC LIMIT {int(window)}'
    )


def median(values: Iterable[float | None]) -> float | None:
    """DuckDB's ``median`` to the last bit; None when there are no values.

    Nulls are ignored; an even count gives ``(lo + hi) / 2`` of the two middle values
    (PostgreSQL's ``percentile_cont`` computes ``lo + (hi - lo) / 2``, which can differ
    in the last bit).
    """
    xs = sorted(v for v in values if v is not None)
    if not xs:
        return None
    mid = len(xs) // 2
    return xs[mid] if len(xs) % 2 else (xs[mid - 1] + xs[mid]) / 2
