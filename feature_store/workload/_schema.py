"""The Arrow schema of a generated workload: exactly the CompletionRecord fields.

>>> from core import RECORD_FIELDS
>>> WORKLOAD_SCHEMA.names == list(RECORD_FIELDS)
True
>>> str(WORKLOAD_SCHEMA.field("submitted_at").type)
'timestamp[us, tz=UTC]'
"""

from __future__ import annotations

import pyarrow as pa

from core.records import field_specs

ARROW_TYPES: dict[str, pa.DataType] = {
    "str": pa.string(),
    "int": pa.int64(),
    "float": pa.float64(),
    "timestamp": pa.timestamp("us", tz="UTC"),
}
"""Arrow type per :attr:`core.FieldSpec.kind`."""

WORKLOAD_SCHEMA: pa.Schema = pa.schema(
    [pa.field(s.name, ARROW_TYPES[s.kind], nullable=not s.required) for s in field_specs()]
)
"""Column names and types of :func:`~feature_store.workload.generate_workload` tables."""
