"""Shared domain types: records, forecasts, settings and errors.

Nothing here imports another tailcast package; every other package imports this one.
"""

from core.errors import InputError, StoreError, TailcastError
from core.forecast import QuantileForecast
from core.ingest import IngestReport, Rejection
from core.records import (
    CROSS_FIELD_RULES,
    RECORD_FIELDS,
    REQUIRED_FIELDS,
    CompletionRecord,
    FieldSpec,
    field_specs,
)
from core.settings import Settings

__all__ = [
    "CROSS_FIELD_RULES",
    "RECORD_FIELDS",
    "REQUIRED_FIELDS",
    "CompletionRecord",
    "FieldSpec",
    "IngestReport",
    "InputError",
    "QuantileForecast",
    "Rejection",
    "Settings",
    "StoreError",
    "TailcastError",
    "field_specs",
]
