"""The documented generic formats: ``csv``, ``jsonl`` and ``parquet``.

All three use the *generic schema*: column (or key) names are exactly the
:class:`core.CompletionRecord` field names (:data:`core.RECORD_FIELDS`), in any order.
The required fields (:data:`core.REQUIRED_FIELDS`) must be present as columns; any
other name is an error that lists it, so a typo such as ``latency`` for
``latency_s`` never silently drops a column. Units are the record's: seconds and
tokens; ``submitted_at`` is an ISO-8601 string (UTC when it has no offset) or unix
seconds.

* ``csv`` (``.csv`` or ``.csv.gz``): a header line, then one record per row. Empty
  fields are null. Values stay strings; the store casts and validates them.
* ``jsonl`` (``.jsonl`` or ``.jsonl.gz``): one JSON object per line; blank lines are
  skipped. A line that is not valid JSON or not an object, or an object with an
  unknown key, a boolean, a list or an object value, becomes a rejected row.
  Numbers stay numbers when every value of a field in the batch is a number;
  otherwise the field's values are passed as strings (``str(1.5) == "1.5"``).
* ``parquet``: columns keep their Parquet types; locations are 1-based rows.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar, Literal

import pyarrow as pa
import pyarrow.parquet as pq

from core.errors import InputError
from core.records import RECORD_FIELDS, REQUIRED_FIELDS, text_problem
from feature_store.importers._base import Importer
from feature_store.importers._csvreader import CsvReader, check_columns, text_lines
from feature_store.importers._layout import RowErrors, canonical_table

_FIELDS = frozenset(RECORD_FIELDS)


class CsvImporter(Importer):
    """Generic CSV: a header of record field names, one record per row."""

    name: ClassVar[str] = "csv"
    description: ClassVar[str] = "CSV with CompletionRecord field names as the header"

    def read(self, path: Path, batch_rows: int = 100_000) -> Iterator[pa.Table]:
        """Yield canonical raw batches of string columns (see ``_base``)."""
        with CsvReader(path) as reader:
            check_columns(reader.header, required=REQUIRED_FIELDS, known=RECORD_FIELDS, file=path)
            for batch in reader.batches(batch_rows):
                columns = {name: batch.array(name) for name in batch.header}
                errors: RowErrors = {i: (None, msg) for i, msg in batch.errors.items()}
                yield canonical_table(columns, batch.lines, errors)


def _column(values: list[object]) -> pa.Array:
    """Build one JSON field's column: typed when uniform, else strings."""
    kinds = {type(v) for v in values if v is not None}
    if kinds == {int}:
        try:
            return pa.array(values, type=pa.int64())
        except OverflowError:
            pass
    elif kinds and kinds <= {int, float}:
        return pa.array(values, type=pa.float64())
    return pa.array([None if v is None else str(v) for v in values], type=pa.string())


def _parse_json_line(text: str) -> tuple[dict[str, object] | None, str | None, str | None]:
    """Return ``(record, error_field, error)`` for one non-blank JSON line."""
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        return None, None, f"invalid JSON: {exc.msg} (column {exc.colno})"
    except ValueError as exc:  # e.g. an integer of more than 4,300 digits
        return None, None, f"invalid JSON: {exc}"
    if not isinstance(obj, dict):
        return None, None, f"invalid JSON: expected an object, found {type(obj).__name__}"
    for key, value in obj.items():  # before anything quotes a key or a value back
        problem = text_problem(key) or (text_problem(value) if isinstance(value, str) else None)
        if problem is not None:
            return None, key.encode("unicode_escape").decode(), problem
    unknown = [key for key in obj if key not in _FIELDS]
    if unknown:
        names = ", ".join(unknown)
        return None, names, f"unknown field(s): {names} (expected CompletionRecord field names)"
    for key, value in obj.items():
        if isinstance(value, bool):
            return None, key, f"boolean value {json.dumps(value)} is not allowed"
        if isinstance(value, list | dict):
            return None, key, f"a JSON {type(value).__name__} is not allowed, expected a scalar"
    return obj, None, None


class JsonlImporter(Importer):
    """Generic JSON lines: one object per line keyed by record field names."""

    name: ClassVar[str] = "jsonl"
    description: ClassVar[str] = "JSON lines, one object per record, CompletionRecord keys"

    def read(self, path: Path, batch_rows: int = 100_000) -> Iterator[pa.Table]:
        """Yield canonical raw batches; bad lines become rejected rows (see ``_base``)."""
        if batch_rows < 1:
            raise ValueError(f"batch_rows must be >= 1, got {batch_rows}")
        records: list[dict[str, object]] = []
        lines: list[int] = []
        errors: RowErrors = {}
        for line, text in text_lines(path):
            if not text.strip():
                continue
            record, field, error = _parse_json_line(text)
            if error is not None:
                errors[len(records)] = (field, error)
            records.append(record or {})
            lines.append(line)
            if len(records) == batch_rows:
                yield self._table(records, lines, errors)
                records, lines, errors = [], [], {}
        if records:
            yield self._table(records, lines, errors)

    @staticmethod
    def _table(records: list[dict[str, object]], lines: list[int], errors: RowErrors) -> pa.Table:
        present = {key for record in records for key in record}
        columns = {
            name: _column([record.get(name) for record in records])
            for name in RECORD_FIELDS
            if name in present
        }
        return canonical_table(columns, lines, errors)


class ParquetImporter(Importer):
    """Generic Parquet: columns named like record fields, any Parquet types."""

    name: ClassVar[str] = "parquet"
    description: ClassVar[str] = "Parquet with CompletionRecord field names as columns"
    location: ClassVar[Literal["line", "row"]] = "row"

    def read(self, path: Path, batch_rows: int = 100_000) -> Iterator[pa.Table]:
        """Yield canonical raw batches; ``_line`` is the 1-based row (see ``_base``)."""
        try:
            parquet = pq.ParquetFile(path)
        except (pa.ArrowException, OSError) as exc:
            raise InputError(f"not a readable Parquet file: {exc}", file=str(path)) from exc
        with parquet:
            names = parquet.schema_arrow.names
            check_columns(
                names, required=REQUIRED_FIELDS, known=RECORD_FIELDS, file=path, line=None
            )
            batches = parquet.iter_batches(batch_size=batch_rows)
            offset = 0
            while True:
                try:
                    batch = next(batches, None)
                except (pa.ArrowException, OSError) as exc:
                    raise InputError(
                        f"unreadable Parquet data: {exc}", file=str(path), line=offset + 1
                    ) from exc
                if batch is None:
                    return
                columns = {name: _decoded(batch.column(name)) for name in names}
                lines = pa.array(range(offset + 1, offset + batch.num_rows + 1), type=pa.int64())
                offset += batch.num_rows
                yield canonical_table(columns, lines)


def _decoded(values: pa.Array) -> pa.Array:
    """Return dictionary-encoded columns as plain arrays (others unchanged)."""
    if pa.types.is_dictionary(values.type):
        return values.dictionary_decode()
    return values
