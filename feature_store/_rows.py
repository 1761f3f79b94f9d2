"""Untrusted mappings (e.g. a JSON batch from the API) as one raw batch to ingest.

:func:`rows_table` is what :meth:`feature_store.RecordStore.ingest_rows` stores: each
mapping becomes one row of the canonical raw layout (see
:mod:`feature_store.importers`), every value as text for the SQL validator, and a
mapping that cannot be a record (not a mapping, an unknown key, a value that is not a
scalar, text that is not valid Unicode, an integer beyond 64 bits) becomes a row
rejected with that reason, so it never takes the others down.

:func:`columns_table` is the same batch built from columns of values that are mostly
already typed (decoded protobuf: ints are ints, floats are floats): a column whose
values all have their field's type is converted to Arrow in one call, with no check
per value (the SQL validator checks ranges, finiteness and lengths for the whole
batch); only a column holding anything else takes the per-value path of
:func:`rows_table`. Both give the same outcome for every row.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

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


#: Arrow type of a typed column, per field kind (``None``: the kind has no typed path).
_ARROW_TYPES: dict[str, pa.DataType] = {
    "str": pa.string(),
    "int": pa.int64(),
    "float": pa.float64(),
    "timestamp": pa.timestamp("us", tz="UTC"),
}
#: Python types of a typed column's values, per field kind (``None`` is always allowed).
_PY_TYPES: dict[str, frozenset[type]] = {
    "str": frozenset({str, type(None)}),
    "int": frozenset({int, type(None)}),
    "float": frozenset({float, type(None)}),
    "timestamp": frozenset({datetime, type(None)}),
}


def columns_table(columns: Mapping[str, Sequence[Any]]) -> pa.Table:
    """One raw batch of untrusted columns: the batch :func:`rows_table` builds of its rows.

    Row ``i`` is ``{name: column[i]}`` over ``columns`` in their order, ``None`` meaning
    absent; it is stored, rejected and reported exactly as :func:`rows_table` would do
    for that row (a row with several unusable values names the first, in column order).
    A column whose values are all ``None`` or of its field's Python type (``str``,
    exactly ``int``, exactly ``float``, a UTC ``datetime``) becomes a typed Arrow column
    in one conversion; any other column is checked and rendered value by value.

    Args:
        columns: Record field name -> one value per row; every column the same length.
            Fields left out are absent from every row.

    Raises:
        ValueError: A name is no record field, or the columns differ in length.
    """
    specs = {s.name: s for s in field_specs()}
    unknown = sorted(set(columns) - set(specs))
    lengths = {len(v) for v in columns.values()}
    if unknown or len(lengths) > 1:
        raise ValueError(f"unknown columns {unknown} or columns of lengths {sorted(lengths)}")
    n = lengths.pop() if lengths else 0
    errors: list[str | None] = [None] * n
    error_fields: list[str | None] = [None] * n
    arrays: dict[str, pa.Array] = {}
    for name, values in columns.items():
        typed = _typed(specs[name].kind, values)
        arrays[name] = typed if typed is not None else _checked(name, values, errors, error_fields)
    return pa.table(
        {
            LINE: pa.array(range(1, n + 1), pa.int64()),
            **{s: arrays.get(s, pa.nulls(n, pa.string())) for s in specs},
            ERROR_FIELD: pa.array(error_fields, pa.string()),
            ERROR: pa.array(errors, pa.string()),
        }
    )


def _typed(kind: str, values: Sequence[Any]) -> pa.Array | None:
    """``values`` as one typed Arrow array, or ``None`` when they need checks one by one.

    ``None`` also where the validator's text of a value would differ from
    :func:`as_text`'s (a NaN with its sign bit set: ``-nan``, not ``nan``; a time not
    in UTC, which ``isoformat`` shows with its offset) or where :func:`value_problem`
    rejects a value the Arrow type holds (``-2**63``). A UTC ``datetime`` is always
    within :data:`core.EARLIEST_TIME` .. :data:`core.LATEST_TIME`.
    """
    if not set(map(type, values)) <= _PY_TYPES[kind]:
        return None
    if kind == "timestamp" and any(v is not None and v.tzinfo is not UTC for v in values):
        return None
    try:
        array = pa.array(values, _ARROW_TYPES[kind])
    except (OverflowError, UnicodeError, pa.ArrowException):  # 64 bits, lone surrogates
        return None
    if array.null_count == len(array) or kind == "str":
        return array
    if kind == "int" and pc.min(array).as_py() == -_INT_LIMIT:
        return None
    if kind == "float" and pc.any(pc.is_nan(array)).as_py():
        return None
    return array


def _checked(
    name: str, values: Sequence[Any], errors: list[str | None], fields: list[str | None]
) -> pa.Array:
    """``values`` checked and rendered as text one by one (the :func:`rows_table` path).

    The first problem of each row is recorded in ``errors``/``fields`` (earlier columns
    win); an unusable value is stored as null.
    """
    texts: list[str | None] = []
    for i, value in enumerate(values):
        problem = value_problem(value)
        if problem is None:
            texts.append(as_text(value))
            continue
        texts.append(None)
        if errors[i] is None:
            errors[i], fields[i] = problem, name
    return pa.array(texts, pa.string())
