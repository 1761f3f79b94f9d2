"""Helpers that assemble batches in the canonical raw layout (see ``_base``).

Every importer ends a batch the same way: record columns (typed or strings), the
``_line`` locations and the importer's own rejections go through
:func:`canonical_table`, so the layout is built in exactly one place.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa

from core.records import RECORD_FIELDS
from feature_store.importers._base import ERROR, ERROR_FIELD, LINE

_FIELDS = frozenset(RECORD_FIELDS)

RowErrors = dict[int, tuple[str | None, str]]
"""Position in the batch -> (record field at fault or ``None``, message)."""

TIMESTAMP = pa.timestamp("us", tz="UTC")
"""The Arrow type importers use for ``submitted_at`` when they compute it."""


def canonical_table(
    columns: Mapping[str, pa.Array],
    lines: Sequence[int] | pa.Array,
    errors: RowErrors | None = None,
) -> pa.Table:
    """Assemble one canonical raw batch.

    Args:
        columns: Record field name -> values (one per row, any Arrow type).
        lines: 1-based source line (or row) of each record.
        errors: The importer's rejections by position; other rows get nulls.

    Returns:
        A table with ``_line`` first, then the record columns in
        :data:`core.RECORD_FIELDS` order, then ``_error_field`` and ``_error``
        (always present, null for good rows).

    Raises:
        ValueError: A column is not a record field (a bug in the importer).
    """
    unknown = set(columns) - _FIELDS
    if unknown:
        raise ValueError(f"not record fields: {sorted(unknown)}")
    line_array = lines if isinstance(lines, pa.Array) else pa.array(lines, type=pa.int64())
    n = len(line_array)
    fields: list[str | None] = [None] * n
    messages: list[str | None] = [None] * n
    for position, (field, message) in (errors or {}).items():
        fields[position], messages[position] = field, message
    arrays = {LINE: line_array}
    arrays |= {name: columns[name] for name in RECORD_FIELDS if name in columns}
    arrays[ERROR_FIELD] = pa.array(fields, type=pa.string())
    arrays[ERROR] = pa.array(messages, type=pa.string())
    return pa.table(arrays)


def parse_ints(values: Sequence[str], field: str, errors: RowErrors) -> list[int | None]:
    """Parse decimal integers; empty -> ``None``; invalid -> ``None`` and a rejection."""
    parsed: list[int | None] = []
    for position, text in enumerate(values):
        try:
            parsed.append(int(text) if text else None)
        except ValueError:
            parsed.append(None)
            errors.setdefault(position, (field, f"not an integer: {text!r}"))
    return parsed


def constant(value: str, n: int) -> pa.Array:
    """Return a string array of ``n`` copies of ``value``."""
    return pa.repeat(pa.scalar(value, type=pa.string()), n)


def microseconds_to_timestamps(micros: Sequence[int | None]) -> pa.Array:
    """Convert unix microseconds (``None`` for unknown) to UTC Arrow timestamps."""
    return pa.array(micros, type=pa.int64()).cast(TIMESTAMP)


def unix_micros(moment: datetime) -> int:
    """Return a timezone-aware datetime as integer unix microseconds.

    >>> unix_micros(datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC))
    1000000
    """
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def file_stem(path: Path) -> str:
    """Return the file name without ``.gz`` and its format extension.

    >>> file_stem(Path("data/azure_llm_2023_conv.csv.gz"))
    'azure_llm_2023_conv'
    """
    name = path.name.removesuffix(".gz")
    return Path(name).stem
