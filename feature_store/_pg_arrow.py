"""Moving Arrow tables in and out of PostgreSQL with ``COPY`` (CSV), no per-row Python.

Out: ``COPY (query) TO STDOUT (FORMAT csv, FORCE_QUOTE *)`` parsed by pyarrow's CSV
reader. Every non-null value is quoted and only an unquoted empty field is null, so
an empty string and a null stay apart and a text such as ``NA`` stays text. Timestamps
travel as integer microseconds since the epoch (exact), floats in PostgreSQL's
shortest round-trip form (``extra_float_digits`` 1, the default since PostgreSQL 12).

In: pyarrow's CSV writer quotes every string and leaves nulls as unquoted empty
fields, which is what ``COPY ... FROM STDIN (FORMAT csv)`` reads back.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

import pyarrow as pa
import pyarrow.csv as pa_csv
from psycopg import Cursor
from psycopg.rows import TupleRow

from core import field_specs

_ARROW_TYPES: dict[str, pa.DataType] = {
    "str": pa.string(),
    "int": pa.int64(),
    "float": pa.float64(),
    "timestamp": pa.timestamp("us", tz="UTC"),
}

#: Arrow type of every record field (``core.CompletionRecord``), as stored.
RECORD_TYPES: dict[str, pa.DataType] = {s.name: _ARROW_TYPES[s.kind] for s in field_specs()}


def select_exprs(columns: Mapping[str, pa.DataType], alias: str) -> list[str]:
    """SELECT expressions for :func:`copy_to_arrow` of ``alias``'s columns, in order.

    Timestamps are selected as integer microseconds since the epoch.
    """
    exprs = []
    for name, typ in columns.items():
        if pa.types.is_timestamp(typ):
            exprs.append(f"(extract(epoch FROM {alias}.{name}) * 1000000)::bigint AS {name}")
        else:
            exprs.append(f"{alias}.{name}")
    return exprs


def copy_to_arrow(
    cur: Cursor[TupleRow],
    query: str,
    params: Sequence[object],
    columns: Mapping[str, pa.DataType],
) -> pa.Table:
    """Run ``query`` and return its rows as an Arrow table of exactly ``columns``.

    Args:
        cur: A cursor (its transaction decides the snapshot).
        query: A SELECT whose columns are ``columns`` in order, timestamps as integer
            microseconds (see :func:`select_exprs`); ``%s`` placeholders for ``params``
            (bound client-side, as ``COPY`` takes no server parameters).
        params: The query parameters.
        columns: Column names mapped to their Arrow types (timestamps: ``timestamp[us]``).
    """
    buffer = io.BytesIO()
    with cur.copy(f"COPY ({query}) TO STDOUT (FORMAT csv, FORCE_QUOTE *)", params) as copy:
        for chunk in copy:
            buffer.write(chunk)
    schema = pa.schema(list(columns.items()))
    if buffer.tell() == 0:
        return schema.empty_table()
    wire = {n: pa.int64() if pa.types.is_timestamp(t) else t for n, t in columns.items()}
    buffer.seek(0)
    table = pa_csv.read_csv(
        buffer,
        read_options=pa_csv.ReadOptions(column_names=list(columns), block_size=1 << 24),
        parse_options=pa_csv.ParseOptions(newlines_in_values=True),
        convert_options=pa_csv.ConvertOptions(
            column_types=wire,
            null_values=[""],
            strings_can_be_null=True,
            quoted_strings_can_be_null=False,
        ),
    )
    return table.cast(schema)


def copy_from_arrow(cur: Cursor[TupleRow], table: str, data: pa.Table) -> None:
    """Append ``data`` to ``table`` (its columns, by name) with one ``COPY ... FROM STDIN``."""
    if data.num_rows == 0:
        return
    buffer = io.BytesIO()
    pa_csv.write_csv(data, buffer, pa_csv.WriteOptions(include_header=False))
    cols = ", ".join(data.column_names)
    with cur.copy(f"COPY {table} ({cols}) FROM STDIN (FORMAT csv)") as copy:
        copy.write(buffer.getbuffer())
