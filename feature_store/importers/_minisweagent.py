"""Format ``minisweagent``: per-call logs of mini-swe-agent runs (DeepSeek API).

Reads ``agentic/minisweagent_calls.csv.gz`` of the shared data (one row per LLM call;
``prev_text`` is quoted and often spans many lines). The header must be exactly the
16 source columns, in any order. Mapping, source column -> record field:

===================================  ===============================================
``model``                            ``served_model``
(constant, option ``device``)        ``device`` = ``"deepseek-api"``
``call_start_ts`` (unix seconds)     ``submitted_at`` (UTC, microseconds)
``prev_text`` (first 2,000 chars)    ``prompt``
``prompt_tokens``                    ``input_tokens`` (includes the cached tokens)
``cached_tokens``                    ``cached_tokens``
``completion_tokens``                ``output_tokens`` (includes reasoning tokens)
``latency_s``                        ``latency_s`` (client-measured, seconds)
``run`` / ``instance_id``            ``workflow_id`` = ``"{run}/{instance_id}"``
``step``                             ``step``
run / instance_id / step             ``request_id`` = ``"{run}/{instance_id}/{step}"``
===================================  ===============================================

The source's ``call_start_ts`` is the time of the previous message, so the first call
of every task (``step`` 0) has neither a start time nor a latency. Such rows are
rejected explicitly (``_error_field`` = ``latency_s``) rather than silently dropped:
the store reports them with their line. Other columns (``call_end_ts``,
``tool_end_ts``, ``reasoning_tokens``, ``finish_reason``, ``prev_role``, ``command``)
are not part of the record and are ignored.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import ClassVar

import pyarrow as pa
import pyarrow.compute as pc

from feature_store.importers._base import Importer
from feature_store.importers._csvreader import CsvBatch, CsvReader, check_columns
from feature_store.importers._layout import (
    TIMESTAMP,
    RowErrors,
    canonical_table,
    constant,
    microseconds_to_timestamps,
)

COLUMNS: tuple[str, ...] = (
    "run",
    "instance_id",
    "model",
    "step",
    "call_start_ts",
    "call_end_ts",
    "latency_s",
    "tool_end_ts",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "reasoning_tokens",
    "finish_reason",
    "prev_role",
    "prev_text",
    "command",
)
"""The source header (``minisweagent_calls.csv.gz``)."""

NO_LATENCY_FIRST_CALL = "no latency in the source (first call of a task has no start time)"
NO_LATENCY = "no latency in the source"

_RENAMED = {
    "served_model": "model",
    "prompt": "prev_text",
    "input_tokens": "prompt_tokens",
    "cached_tokens": "cached_tokens",
    "output_tokens": "completion_tokens",
    "latency_s": "latency_s",
    "step": "step",
}


def unix_seconds_to_timestamps(values: Sequence[str], errors: RowErrors) -> pa.Array:
    """Convert unix-seconds strings to UTC timestamps (microsecond precision).

    Empty strings become null. A non-empty value that is not a finite number becomes
    null and a rejection of ``submitted_at`` in ``errors`` (unless the row already
    has one).
    """
    strings = pa.array(values, type=pa.string())
    strings = pc.if_else(pc.equal(strings, ""), pa.scalar(None, pa.string()), strings)
    try:
        micros = pc.round(pc.multiply(pc.cast(strings, pa.float64()), 1e6))
        return pc.cast(micros, pa.int64()).cast(TIMESTAMP)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass  # some value is not a finite number: find which, row by row
    parsed: list[int | None] = []
    for position, text in enumerate(values):
        try:
            seconds = float(text) if text else math.nan
        except ValueError:
            seconds = math.nan
        if math.isfinite(seconds):
            parsed.append(round(seconds * 1e6))
            continue
        parsed.append(None)
        if text:
            message = f"call_start_ts {text!r} is not unix seconds"
            errors.setdefault(position, ("submitted_at", message))
    return microseconds_to_timestamps(parsed)


class MiniSweAgentImporter(Importer):
    """mini-swe-agent call logs: one record per LLM call of an agentic task.

    Args:
        device: The ``device`` of every record (the calls went to the public API).
    """

    name: ClassVar[str] = "minisweagent"
    description: ClassVar[str] = "mini-swe-agent call log (minisweagent_calls.csv.gz)"

    def __init__(self, device: str = "deepseek-api") -> None:
        self.device = device

    def read(self, path: Path, batch_rows: int = 100_000) -> Iterator[pa.Table]:
        """Yield canonical raw batches; step-0 rows are rejected (see module doc)."""
        with CsvReader(path) as reader:
            check_columns(reader.header, required=COLUMNS, known=COLUMNS, file=path)
            for batch in reader.batches(batch_rows):
                yield self._table(batch)

    def _table(self, batch: CsvBatch) -> pa.Table:
        errors: RowErrors = {i: (None, msg) for i, msg in batch.errors.items()}
        steps = batch.columns["step"]
        for position, latency in enumerate(batch.columns["latency_s"]):
            if not latency and position not in errors:
                message = NO_LATENCY_FIRST_CALL if steps[position].strip() == "0" else NO_LATENCY
                errors[position] = ("latency_s", message)
        run, instance, step = batch.array("run"), batch.array("instance_id"), batch.array("step")
        columns = {
            "request_id": pc.binary_join_element_wise(run, instance, step, "/"),
            "device": constant(self.device, len(batch)),
            "submitted_at": unix_seconds_to_timestamps(batch.columns["call_start_ts"], errors),
            "workflow_id": pc.binary_join_element_wise(run, instance, "/"),
        }
        columns |= {field: batch.array(source) for field, source in _RENAMED.items()}
        return canonical_table(columns, batch.lines, errors)
