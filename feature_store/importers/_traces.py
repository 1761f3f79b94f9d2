"""Formats ``azure`` and ``mooncake``: real request-arrival traces.

Arrival traces record when requests came and how long they were, never how long
they took, so their records have ``latency_s`` null (the store keeps them; they
never enter a latency training frame) unless a :class:`DeviceProfile` is given: then
``latency_s`` and ``ttft_s`` are composed from real device measurements (see
``_device_profile``; the full ``input_tokens`` are prefilled, with no credit for
``cached_tokens``, because the measured devices had no prefix cache).

``azure`` (``traces/azure_llm_2023_conv.csv``, Azure LLM inference trace 2023,
conversation): columns ``TIMESTAMP`` (``2023-11-16 18:15:46.6805900``, taken as
UTC, truncated to microseconds) -> ``submitted_at``, ``ContextTokens`` ->
``input_tokens``, ``GeneratedTokens`` -> ``output_tokens``.
``request_id`` = ``"azure:{file stem}:{line}"``.

``mooncake`` (``traces/mooncake_fast25_conversation_trace.jsonl``, one JSON object a
line): ``timestamp`` (ms since the trace start) -> ``submitted_at`` = ``origin`` +
timestamp (``origin`` defaults to :data:`MOONCAKE_ORIGIN`, 2025-01-01T00:00:00Z,
an arbitrary fixed instant: the trace publishes no wall-clock start),
``input_length`` -> ``input_tokens``, ``output_length`` -> ``output_tokens``,
``hash_ids`` (ids of the prompt's 512-token prefix blocks) -> ``cached_tokens`` =
the number of leading blocks already seen earlier in the file x 512, capped at
``input_length``: the prefix-cache hit an ideal (unbounded) cache would get.
``request_id`` = ``"mooncake:{file stem}:{line}"``. Conversations are recovered
from the blocks (a turn's prompt is the previous turn's prompt and answer plus the
new message, so it starts with the previous turn's blocks): a request's previous turn
is the most recent earlier request sharing its longest common block prefix, if that
prefix is at least :data:`MOONCAKE_MIN_SHARED_BLOCKS` blocks (the first block is a
system prompt every request shares). ``workflow_id`` = the first turn's
``request_id``, ``step`` = the turn's depth (0 for a first turn), so the store's
workflow features (``wf_prev_output_tokens``) carry the previous answer's length: on
the published trace 39% of requests have a previous turn, and their output lengths
have Spearman 0.64 with it.

Both: ``served_model`` and ``device`` are options; by default the profile's model
and hardware when a profile is given, else ``"azure-conv"`` / ``"mooncake-conv"``
and ``"unknown"``. No prompt text.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import ClassVar

import numpy as np
import pyarrow as pa

from feature_store.importers._base import Importer
from feature_store.importers._csvreader import CsvReader, check_columns, text_lines
from feature_store.importers._device_profile import (
    DEFAULT_HARDWARE,
    DEFAULT_MODEL,
    DeviceProfile,
    ProfileOption,
    outcome_columns,
    resolve_profile,
)
from feature_store.importers._layout import (
    TIMESTAMP,
    RowErrors,
    canonical_table,
    constant,
    file_stem,
    microseconds_to_timestamps,
    parse_ints,
    unix_micros,
)

AZURE_COLUMNS = ("TIMESTAMP", "ContextTokens", "GeneratedTokens")
MOONCAKE_ORIGIN = datetime(2025, 1, 1, tzinfo=UTC)
"""Default wall-clock instant of a Mooncake trace's ``timestamp`` 0."""
MOONCAKE_BLOCK_TOKENS = 512
MOONCAKE_MIN_SHARED_BLOCKS = 2
"""Shared leading blocks that make an earlier request a turn of the same conversation."""


def parse_utc_timestamps(values: Sequence[str], errors: RowErrors) -> pa.Array:
    """Parse ISO-8601 date-times (naive ones are UTC) to UTC timestamps."""
    strings = pa.array([v or None for v in values], type=pa.string())
    try:
        return strings.cast(pa.timestamp("ns")).cast(TIMESTAMP, safe=False)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass  # an offset or a malformed value: parse row by row
    micros: list[int | None] = []
    for position, text in enumerate(values):
        try:
            moment = datetime.fromisoformat(text) if text else None
        except ValueError:
            moment = None
            errors.setdefault(position, ("submitted_at", f"not an ISO-8601 time: {text!r}"))
        if moment is not None and moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        micros.append(None if moment is None else unix_micros(moment))
    return microseconds_to_timestamps(micros)


class _TraceImporter(Importer):
    """Options shared by the trace importers (see the module doc).

    Args:
        served_model: Records' ``served_model`` (default: the profile's model, else
            the format's default).
        device: Records' ``device`` (default: the profile's hardware, else
            ``unknown``).
        profile: Device measurements (or their file) to compose latencies from.
        profile_model: Model to select when ``profile`` is a file.
        profile_hardware: Hardware to select when ``profile`` is a file.
        profile_batch_size: Batch size to select when ``profile`` is a file.
        seed: Seed of the measurement draws (one per record, in file order).
    """

    default_model: ClassVar[str]

    def __init__(
        self,
        served_model: str | None = None,
        device: str | None = None,
        profile: ProfileOption = None,
        profile_model: str = DEFAULT_MODEL,
        profile_hardware: str = DEFAULT_HARDWARE,
        profile_batch_size: int = 1,
        seed: int = 0,
    ) -> None:
        self.profile: DeviceProfile | None = resolve_profile(
            profile, model=profile_model, hardware=profile_hardware, batch_size=profile_batch_size
        )
        fallback_model = self.profile.model if self.profile else self.default_model
        self.served_model = served_model or fallback_model
        self.device = device or (self.profile.hardware if self.profile else "unknown")
        self.seed = seed

    def _table(
        self,
        stem: str,
        lines: list[int],
        columns: dict[str, pa.Array],
        tokens: tuple[list[int | None], list[int | None]],
        errors: RowErrors,
        rng: np.random.Generator,
    ) -> pa.Table:
        n = len(lines)
        columns = {
            "request_id": pa.array([f"{self.name}:{stem}:{line}" for line in lines]),
            "served_model": constant(self.served_model, n),
            "device": constant(self.device, n),
            **columns,
            "input_tokens": pa.array(tokens[0], type=pa.int64()),
            "output_tokens": pa.array(tokens[1], type=pa.int64()),
        }
        if self.profile is not None:
            columns |= outcome_columns(self.profile, *tokens, rng)
        return canonical_table(columns, lines, errors)


class AzureTraceImporter(_TraceImporter):
    """Azure LLM inference trace (2023, CSV): arrivals and token counts.

    Takes the options of every trace importer (``served_model``, ``device``,
    ``profile``, ``profile_model``, ``profile_hardware``, ``profile_batch_size``,
    ``seed``; see the module doc).
    """

    name: ClassVar[str] = "azure"
    description: ClassVar[str] = "Azure LLM trace CSV (TIMESTAMP, ContextTokens, GeneratedTokens)"
    default_model: ClassVar[str] = "azure-conv"

    def read(self, path: Path, batch_rows: int = 100_000) -> Iterator[pa.Table]:
        """Yield canonical raw batches, one record per request (see module doc)."""
        stem, rng = file_stem(path), np.random.default_rng(self.seed)
        with CsvReader(path) as reader:
            check_columns(reader.header, required=AZURE_COLUMNS, known=AZURE_COLUMNS, file=path)
            for batch in reader.batches(batch_rows):
                errors: RowErrors = {i: (None, msg) for i, msg in batch.errors.items()}
                tokens = (
                    parse_ints(batch.columns["ContextTokens"], "input_tokens", errors),
                    parse_ints(batch.columns["GeneratedTokens"], "output_tokens", errors),
                )
                submitted = parse_utc_timestamps(batch.columns["TIMESTAMP"], errors)
                columns = {"submitted_at": submitted}
                yield self._table(stem, batch.lines, columns, tokens, errors, rng)


def _integer(obj: dict[str, object], key: str) -> int:
    value = obj.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{key} must be an integer, found {json.dumps(value)}")
    return value


def parse_mooncake(text: str) -> tuple[float, int, int, list[int]]:
    """Parse one Mooncake line to ``(timestamp_ms, input, output, hash_ids)``.

    Raises:
        ValueError: Not JSON, not an object, or a missing or mistyped key.
    """
    obj = json.loads(text)  # json.JSONDecodeError is a ValueError
    if not isinstance(obj, dict):
        raise ValueError(f"expected an object, found {type(obj).__name__}")
    stamp = obj.get("timestamp")
    if not isinstance(stamp, int | float) or isinstance(stamp, bool) or not math.isfinite(stamp):
        raise ValueError(f"timestamp must be a finite number, found {json.dumps(stamp)}")
    blocks = obj.get("hash_ids", [])
    if not isinstance(blocks, list) or not all(
        isinstance(b, int) and not isinstance(b, bool) for b in blocks
    ):
        raise ValueError("hash_ids must be a list of integers")
    return stamp, _integer(obj, "input_length"), _integer(obj, "output_length"), blocks


_Row = tuple[int, int | None, int | None, int | None, int | None, str | None, int | None]
"""(line, submitted_at in unix microseconds, input, output, cached, workflow, step)."""


class _Node:
    """A trie node: the latest request ``(workflow id, step)`` whose prompt passed here."""

    __slots__ = ("children", "latest")

    def __init__(self) -> None:
        self.children: dict[int, _Node] = {}
        self.latest: tuple[str, int] | None = None


class _Conversations:
    """A trie of prefix blocks that links each request to its previous turn.

    The deepest node a new prompt reaches at depth >= ``min_shared`` names the
    previous turn (the latest request through it). Memory: one node per distinct
    block prefix.

    >>> c = _Conversations(min_shared=2)
    >>> c.add("a", [0, 1, 2]), c.add("b", [0, 1, 2, 3]), c.add("c", [0, 7]), c.add("d", [0, 1])
    (('a', 0), ('a', 1), ('c', 0), ('a', 2))
    """

    def __init__(self, min_shared: int) -> None:
        self.min_shared = min_shared
        self._root = _Node()

    def add(self, request_id: str, blocks: Sequence[int]) -> tuple[str, int]:
        """Link a request; returns its ``(workflow id, step)``."""
        node, parent = self._root, None
        for depth, block in enumerate(blocks, start=1):
            child = node.children.get(block)
            if child is None:
                break
            if depth >= self.min_shared:
                parent = child.latest
            node = child
        own = (parent[0], parent[1] + 1) if parent is not None else (request_id, 0)
        node = self._root
        for block in blocks:
            node = node.children.setdefault(block, _Node())
            node.latest = own
        return own


class MooncakeTraceImporter(_TraceImporter):
    """Mooncake conversation trace (FAST'25, JSON lines) with prefix-block ids.

    Takes the options of every trace importer (see the Azure importer) and:

    Args:
        origin: Wall-clock instant of ``timestamp`` 0 (a naive value is UTC).
        block_tokens: Tokens per ``hash_ids`` block.
    """

    name: ClassVar[str] = "mooncake"
    description: ClassVar[str] = "Mooncake trace JSONL (timestamp ms, lengths, hash_ids)"
    default_model: ClassVar[str] = "mooncake-conv"

    def __init__(
        self,
        served_model: str | None = None,
        device: str | None = None,
        profile: ProfileOption = None,
        profile_model: str = DEFAULT_MODEL,
        profile_hardware: str = DEFAULT_HARDWARE,
        profile_batch_size: int = 1,
        seed: int = 0,
        origin: datetime | str = MOONCAKE_ORIGIN,
        block_tokens: int = MOONCAKE_BLOCK_TOKENS,
    ) -> None:
        super().__init__(
            served_model, device, profile, profile_model, profile_hardware, profile_batch_size, seed
        )
        moment = datetime.fromisoformat(origin) if isinstance(origin, str) else origin
        self.origin = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        self.block_tokens = block_tokens

    def read(self, path: Path, batch_rows: int = 100_000) -> Iterator[pa.Table]:
        """Yield canonical raw batches; bad lines become rejected rows (see module doc)."""
        if batch_rows < 1:
            raise ValueError(f"batch_rows must be >= 1, got {batch_rows}")
        stem, rng = file_stem(path), np.random.default_rng(self.seed)
        origin_us, seen = unix_micros(self.origin), set[int]()
        conversations = _Conversations(MOONCAKE_MIN_SHARED_BLOCKS)
        rows: list[_Row] = []
        errors: RowErrors = {}
        for line, text in text_lines(path):
            if not text.strip():
                continue
            try:
                stamp, inputs, outputs, blocks = parse_mooncake(text)
            except ValueError as exc:
                errors[len(rows)] = (None, f"invalid Mooncake record: {exc}")
                rows.append((line, None, None, None, None, None, None))
            else:
                hits = 0
                while hits < len(blocks) and blocks[hits] in seen:
                    hits += 1
                seen.update(blocks)
                cached = min(hits * self.block_tokens, max(inputs, 0))
                workflow, step = conversations.add(f"{self.name}:{stem}:{line}", blocks)
                stamp_us = origin_us + round(stamp * 1000)
                rows.append((line, stamp_us, inputs, outputs, cached, workflow, step))
            if len(rows) == batch_rows:
                yield self._batch(stem, rows, errors, rng)
                rows, errors = [], {}
        if rows:
            yield self._batch(stem, rows, errors, rng)

    def _batch(
        self, stem: str, rows: list[_Row], errors: RowErrors, rng: np.random.Generator
    ) -> pa.Table:
        columns = {
            "submitted_at": microseconds_to_timestamps([row[1] for row in rows]),
            "cached_tokens": pa.array([row[4] for row in rows], type=pa.int64()),
            "workflow_id": pa.array([row[5] for row in rows], type=pa.string()),
            "step": pa.array([row[6] for row in rows], type=pa.int64()),
        }
        tokens = ([row[2] for row in rows], [row[3] for row in rows])
        return self._table(stem, [row[0] for row in rows], columns, tokens, errors, rng)
