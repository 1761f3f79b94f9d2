"""Untrusted mappings (e.g. a JSON batch from the API) as one raw batch to ingest.

:func:`rows_table` is what :meth:`feature_store.RecordStore.ingest_rows` stores: each
mapping becomes one row of the canonical raw layout (see
:mod:`feature_store.importers`), every value as text for the SQL validator, and a
mapping that cannot be a record (not a mapping, an unknown key, a value that is not a
scalar, text that is not valid Unicode, an integer beyond 64 bits) becomes a row
rejected with that reason, so it never takes the others down.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import pyarrow as pa

from core import field_specs, text_problem
from feature_store.importers._base import ERROR, ERROR_FIELD, LINE

#: Integers beyond this magnitude are rejected before they are rendered as text (the
#: store holds 64-bit integers; ``str`` of a huge int is slow, and refused past 4300 digits).
_INT_LIMIT = 2**63


def rows_table(rows: Sequence[Mapping[str, Any]]) -> pa.Table:
    """One raw batch of ``rows`` (string columns; ``_line`` is the 1-based position)."""
    known = {s.name for s in field_specs()}
    columns: dict[str, list[Any]] = {name: [] for name in known}
    errors: list[str | None] = []
    error_fields: list[str | None] = []
    for row in rows:
        field, error = row_problem(row, known)
        error_fields.append(field)
        errors.append(error)
        for name in known:
            value = row.get(name) if isinstance(row, Mapping) and error is None else None
            columns[name].append(as_text(value))
    return pa.table(
        {
            LINE: pa.array(range(1, len(errors) + 1), pa.int64()),
            **{n: pa.array(v, pa.string()) for n, v in columns.items()},
            ERROR_FIELD: pa.array(error_fields, pa.string()),
            ERROR: pa.array(errors, pa.string()),
        }
    )


def row_problem(row: object, known: set[str]) -> tuple[str | None, str | None]:
    """Return (field, reason) when an untrusted row cannot be a record, else (None, None)."""
    if not isinstance(row, Mapping):
        return None, f"expected an object, got {type(row).__name__}"
    extra = sorted(_printable(k) for k in set(row) - known)
    if extra:
        return extra[0], f"unknown field(s): {', '.join(extra)}"
    for name, value in row.items():
        problem = value_problem(value)
        if problem is not None:
            return str(name), problem
    return None, None


def value_problem(value: object) -> str | None:
    """Why one untrusted value cannot be a record field's raw value, or ``None``."""
    if isinstance(value, str):
        return text_problem(value)
    if isinstance(value, bool) or not isinstance(value, int | float | datetime | None):
        return f"expected a string or number, got {type(value).__name__}"
    if isinstance(value, int) and not -_INT_LIMIT < value < _INT_LIMIT:
        return f"out of range: a {value.bit_length()}-bit integer (the store holds 64-bit ones)"
    return None


def _printable(key: object) -> str:
    r"""``key`` as text any UTF-8 consumer takes (a lone surrogate as ``\udXXX``)."""
    return str(key).encode("utf-8", "backslashreplace").decode("utf-8")


def as_text(value: Any) -> str | None:
    """Render a checked scalar as text for the SQL validator (which casts and checks it)."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)
