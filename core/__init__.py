"""Shared domain types: records, forecasts, settings and errors.

Nothing here imports another tailcast package; every other package imports this one.
"""

from core.errors import InputError, StoreError, TailcastError
from core.forecast import QuantileForecast
from core.ingest import IngestReport, Rejection
from core.records import (
    CROSS_FIELD_RULES,
    EARLIEST_TIME,
    LATEST_TIME,
    MAX_COUNT,
    MAX_PROMPT_CHARS,
    RECORD_FIELDS,
    REQUIRED_FIELDS,
    CompletionRecord,
    FieldSpec,
    field_specs,
    seconds_left,
    text_problem,
)
from core.settings import Settings

__all__ = [
    "CROSS_FIELD_RULES",
    "EARLIEST_TIME",
    "LATEST_TIME",
    "MAX_COUNT",
    "MAX_PROMPT_CHARS",
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
    "seconds_left",
    "text_problem",
]
