"""Format ``alpacaeval``: one prompt set answered by many models (AlpacaEval).

Reads ``prompt_length/alpacaeval_output_lengths.csv.gz`` (columns
``instruction_idx, model_dir, generator, output_chars, output_words``; one row per
model and instruction) joined on ``instruction_idx`` with
``alpacaeval_instructions.csv`` (``instruction_idx, dataset, instruction``; by
default the sibling file in the same directory, option ``instructions``).

The source measures lengths in characters and words, not tokens, and has no times
and no latencies. Mapping and approximations:

* ``served_model`` = ``generator``; ``prompt`` = the instruction text;
* ``input_tokens`` = ``ceil(len(instruction) / 4)`` (about 4 characters per token);
* ``output_tokens`` = ``round(output_words * 4 / 3)`` (about 3 words per 4 tokens);
* ``request_id`` = ``"alpacaeval:{model_dir}:{instruction_idx}"``;
* ``submitted_at`` = ``origin`` + the 0-based record index in seconds (``origin``
  defaults to :data:`ALPACAEVAL_ORIGIN`, 2024-01-01T00:00:00Z, an arbitrary fixed
  instant), so records are ordered like the file and one second apart;
* with a device profile (option ``profile``; see ``_device_profile``):
  ``latency_s = prefill + output_tokens x per_token`` and ``ttft_s = prefill``, both
  from ONE real measurement at the nearest measured prompt and output sizes, drawn
  with ``numpy.random.default_rng(seed)`` (one draw per record, in file order), and
  ``device`` = the profile's hardware. Without a profile ``latency_s`` is null and
  ``device`` is ``"unknown"`` (option ``device`` overrides both defaults).

A row whose ``instruction_idx`` is not in the instructions file (the shared copy
holds part of the set back) is rejected with ``_error_field`` = ``prompt``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from core.errors import InputError
from feature_store.importers._base import Importer
from feature_store.importers._csvreader import CsvBatch, CsvReader, check_columns
from feature_store.importers._device_profile import (
    DEFAULT_HARDWARE,
    DEFAULT_MODEL,
    ProfileOption,
    outcome_columns,
    resolve_profile,
)
from feature_store.importers._layout import (
    RowErrors,
    canonical_table,
    constant,
    microseconds_to_timestamps,
    parse_ints,
    unix_micros,
)

OUTPUT_COLUMNS = ("instruction_idx", "model_dir", "generator", "output_chars", "output_words")
INSTRUCTION_COLUMNS = ("instruction_idx", "dataset", "instruction")
INSTRUCTIONS_FILE = "alpacaeval_instructions.csv"
ALPACAEVAL_ORIGIN = datetime(2024, 1, 1, tzinfo=UTC)
"""Default ``submitted_at`` of the first record (the source has no times)."""
CHARS_PER_TOKEN = 4
TOKENS_PER_WORD = 4 / 3


def load_instructions(path: Path) -> dict[str, str]:
    """Return ``instruction_idx`` -> instruction text.

    Raises:
        core.InputError: Unreadable file, wrong header, malformed row or duplicate
            index (names the file and line).
    """
    instructions: dict[str, str] = {}
    with CsvReader(path) as reader:
        columns = INSTRUCTION_COLUMNS
        check_columns(reader.header, required=columns, known=columns, file=path)
        for batch in reader.batches():
            for position, message in batch.errors.items():
                raise InputError(message, file=str(path), line=batch.lines[position])
            pairs = zip(batch.columns["instruction_idx"], batch.columns["instruction"], strict=True)
            for position, (key, text) in enumerate(pairs):
                if key.strip() in instructions:
                    line = batch.lines[position]
                    raise InputError(
                        f"duplicate instruction_idx {key!r}", file=str(path), line=line
                    )
                instructions[key.strip()] = text
    return instructions


class AlpacaEvalImporter(Importer):
    """AlpacaEval output lengths joined with their instructions (see module doc).

    Args:
        instructions: The instructions file (default: the sibling
            ``alpacaeval_instructions.csv``).
        device: Records' ``device`` (default: the profile's hardware, else ``unknown``).
        origin: ``submitted_at`` of the first record (a naive value is UTC).
        profile: Device measurements (or their file) to compose latencies from.
        profile_model: Model to select when ``profile`` is a file.
        profile_hardware: Hardware to select when ``profile`` is a file.
        profile_batch_size: Batch size to select when ``profile`` is a file.
        seed: Seed of the measurement draws.
    """

    name: ClassVar[str] = "alpacaeval"
    description: ClassVar[str] = "AlpacaEval output lengths + instructions (lengths approximated)"

    def __init__(
        self,
        instructions: Path | str | None = None,
        device: str | None = None,
        origin: datetime | str = ALPACAEVAL_ORIGIN,
        profile: ProfileOption = None,
        profile_model: str = DEFAULT_MODEL,
        profile_hardware: str = DEFAULT_HARDWARE,
        profile_batch_size: int = 1,
        seed: int = 0,
    ) -> None:
        self.instructions = None if instructions is None else Path(instructions)
        self.profile = resolve_profile(
            profile, model=profile_model, hardware=profile_hardware, batch_size=profile_batch_size
        )
        self.device = device or (self.profile.hardware if self.profile else "unknown")
        moment = datetime.fromisoformat(origin) if isinstance(origin, str) else origin
        self.origin = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        self.seed = seed

    def read(self, path: Path, batch_rows: int = 100_000) -> Iterator[pa.Table]:
        """Yield canonical raw batches, one record per (model, instruction)."""
        texts = load_instructions(self.instructions or path.parent / INSTRUCTIONS_FILE)
        input_tokens = {key: math.ceil(len(text) / CHARS_PER_TOKEN) for key, text in texts.items()}
        rng = np.random.default_rng(self.seed)
        first_index = 0
        with CsvReader(path) as reader:
            check_columns(reader.header, required=OUTPUT_COLUMNS, known=OUTPUT_COLUMNS, file=path)
            for batch in reader.batches(batch_rows):
                yield self._table(batch, texts, input_tokens, first_index, rng)
                first_index += len(batch)

    def _table(
        self,
        batch: CsvBatch,
        texts: dict[str, str],
        input_tokens: dict[str, int],
        first_index: int,
        rng: np.random.Generator,
    ) -> pa.Table:
        errors: RowErrors = {i: (None, msg) for i, msg in batch.errors.items()}
        keys = [key.strip() for key in batch.columns["instruction_idx"]]
        for position, key in enumerate(keys):
            if key not in texts and position not in errors:
                errors[position] = ("prompt", f"instruction_idx {key!r} not in {INSTRUCTIONS_FILE}")
        words = parse_ints(batch.columns["output_words"], "output_tokens", errors)
        outputs = [None if w is None else round(w * TOKENS_PER_WORD) for w in words]
        inputs = [input_tokens.get(key) for key in keys]
        n, origin_us = len(batch), unix_micros(self.origin)
        micros = [origin_us + (first_index + i) * 1_000_000 for i in range(n)]
        key_array = pa.array(keys, type=pa.string())
        columns = {
            "request_id": pc.binary_join_element_wise(
                constant("alpacaeval", n), batch.array("model_dir"), key_array, ":"
            ),
            "served_model": batch.array("generator"),
            "device": constant(self.device, n),
            "submitted_at": microseconds_to_timestamps(micros),
            "prompt": pa.array([texts.get(key) for key in keys], type=pa.string()),
            "input_tokens": pa.array(inputs, type=pa.int64()),
            "output_tokens": pa.array(outputs, type=pa.int64()),
        }
        if self.profile is not None:
            columns |= outcome_columns(self.profile, inputs, outputs, rng)
        return canonical_table(columns, batch.lines, errors)
