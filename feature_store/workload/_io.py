"""write_workload: a records table to the documented generic formats, by file extension.

* ``.parquet``: columns and Arrow types as they are (``submitted_at`` a UTC timestamp).
* ``.csv`` / ``.csv.gz``: a header of field names, one record per row; null is an
  empty field.
* ``.jsonl`` / ``.jsonl.gz``: one JSON object per line keyed by field name; null is
  ``null``; floats in shortest round-trip form.

In CSV and JSON lines, timestamps are ISO-8601 UTC strings with microseconds
(``2025-03-03T00:00:02.369161Z``). These are the generic formats the feature store's
``csv``, ``jsonl`` and ``parquet`` importers read. Every format is written through a
temporary file that replaces ``path`` at the end, so a failed write leaves no partial
file behind.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from core.records import RECORD_FIELDS, REQUIRED_FIELDS

FORMATS: tuple[str, ...] = (".parquet", ".csv", ".csv.gz", ".jsonl", ".jsonl.gz")
"""Supported file extensions."""

_JSON_ESCAPES = (("\\", "\\\\"), ('"', '\\"'), ("\n", "\\n"), ("\r", "\\r"), ("\t", "\\t"))
_LINES_PER_WRITE = 50_000


def _format(path: Path) -> str:
    name = path.name.lower()
    for ext in sorted(FORMATS, key=len, reverse=True):
        if name.endswith(ext):
            return ext
    raise ValueError(f"cannot tell the format of {path}: use one of {', '.join(FORMATS)}")


def _check_columns(table: pa.Table) -> None:
    unknown = [c for c in table.column_names if c not in RECORD_FIELDS]
    missing = [c for c in REQUIRED_FIELDS if c not in table.column_names]
    if unknown or missing:
        raise ValueError(
            f"not a records table: unknown columns {unknown}, missing required {missing}"
        )


def _iso_timestamps(table: pa.Table) -> pa.Table:
    """Replace timestamp columns by ISO-8601 UTC strings."""
    for i, field in enumerate(table.schema):
        if pa.types.is_timestamp(field.type):
            utc = table.column(i).cast(pa.timestamp("us", tz="UTC"))
            iso = pc.strftime(utc, format="%Y-%m-%dT%H:%M:%SZ")
            table = table.set_column(i, field.name, iso)
    return table


def _json_values(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """JSON text of every value of one column (``null`` for nulls)."""
    kind = column.type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        text = column
        for raw, escaped in _JSON_ESCAPES:
            text = pc.replace_substring(text, raw, escaped)
        if pc.any(pc.match_substring_regex(text, "[\\x00-\\x1f]")).as_py():
            for code in range(0x20):
                text = pc.replace_substring(text, chr(code), f"\\u{code:04x}")
        text = pc.binary_join_element_wise('"', text, '"', "")
    elif pa.types.is_integer(kind):
        text = column.cast(pa.string())
    elif pa.types.is_floating(kind):
        finite = pc.is_finite(column)
        text = pc.if_else(finite, column, pa.scalar(None, kind)).cast(pa.string())
    else:
        raise TypeError(f"column {kind} cannot be written as JSON lines")
    return pc.fill_null(text, "null")


def _write_jsonl(table: pa.Table, sink: pa.NativeFile) -> None:
    parts: list[pa.ChunkedArray | str] = []
    for i, name in enumerate(table.column_names):
        parts += [("{" if i == 0 else ",") + f'"{name}":', _json_values(table.column(i))]
    lines = pc.binary_join_element_wise(*parts, "}", "")
    for start in range(0, len(lines), _LINES_PER_WRITE):
        chunk = lines.slice(start, _LINES_PER_WRITE).to_pylist()
        sink.write(("\n".join(chunk) + "\n").encode())


def write_workload(table: pa.Table, path: str | Path) -> Path:
    """Write a records table in the generic format named by the file extension.

    Args:
        table: Columns named like :class:`core.CompletionRecord` fields (any subset
            holding the required ones), e.g. from ``generate_workload``.
        path: Destination; its extension picks the format (see :data:`FORMATS`).

    Returns:
        The path written.

    Raises:
        ValueError: Unknown extension, or columns that are not record fields.

    >>> import tempfile
    >>> from feature_store.workload import WorkloadConfig, generate_workload
    >>> t = generate_workload(WorkloadConfig(n_records=3))
    >>> with tempfile.TemporaryDirectory() as d:
    ...     p = write_workload(t, Path(d) / "w.jsonl")
    ...     p.read_text().splitlines()[0][:40]
    '{"request_id":"wl-s0-00000000","served_m'
    """
    path = Path(path)
    fmt = _format(path)
    _check_columns(table)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        if fmt == ".parquet":
            pq.write_table(table, tmp)
        else:
            stream = pa.OSFile(str(tmp), "wb")
            sink = pa.CompressedOutputStream(stream, "gzip") if fmt.endswith(".gz") else stream
            with sink:
                if fmt.startswith(".csv"):
                    pacsv.write_csv(_iso_timestamps(table), sink)
                else:
                    _write_jsonl(_iso_timestamps(table), sink)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
