"""Importers: real file formats mapped to completion records.

Every importer reads one file and yields batches in the canonical raw layout (see
:class:`Importer`); the feature store validates and writes them. Formats, by
``--format`` name:

* ``csv``, ``jsonl``, ``parquet``: the documented generic schema (column names are the
  :class:`core.CompletionRecord` fields);
* ``minisweagent``: mini-swe-agent call logs (agentic, DeepSeek API);
* ``azure``, ``mooncake``: request-arrival traces (no outcome unless a device profile
  composes one);
* ``alpacaeval``: AlpacaEval output lengths joined with their instructions.

``docs/importers.md`` describes every mapping and approximation.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from core.errors import InputError
from feature_store.importers._alpacaeval import AlpacaEvalImporter
from feature_store.importers._base import ERROR, ERROR_FIELD, LINE, Importer
from feature_store.importers._device_profile import Composition, DeviceProfile
from feature_store.importers._generic import CsvImporter, JsonlImporter, ParquetImporter
from feature_store.importers._minisweagent import MiniSweAgentImporter
from feature_store.importers._traces import AzureTraceImporter, MooncakeTraceImporter

FORMATS: dict[str, type[Importer]] = {
    importer.name: importer
    for importer in (
        CsvImporter,
        JsonlImporter,
        ParquetImporter,
        MiniSweAgentImporter,
        AzureTraceImporter,
        MooncakeTraceImporter,
        AlpacaEvalImporter,
    )
}
"""Every importer by format name."""

KNOWN_FILES: dict[str, str] = {
    "minisweagent_calls.csv.gz": "minisweagent",
    "minisweagent_calls.csv": "minisweagent",
    "azure_llm_2023_conv.csv": "azure",
    "azure_llm_2023_conv.csv.gz": "azure",
    "mooncake_fast25_conversation_trace.jsonl": "mooncake",
    "mooncake_fast25_conversation_trace.jsonl.gz": "mooncake",
    "alpacaeval_output_lengths.csv.gz": "alpacaeval",
    "alpacaeval_output_lengths.csv": "alpacaeval",
}
"""Shared data files that have their own format, by file name."""

_EXTENSIONS = {".csv": "csv", ".jsonl": "jsonl", ".parquet": "parquet"}


def detect_format(path: Path | str) -> str:
    """Guess the format of a file from its name.

    Known shared files map to their own format; others by extension (``.csv``,
    ``.jsonl`` (each optionally ``.gz``) or ``.parquet``).

    Raises:
        core.InputError: The name matches no format.

    Examples:
        >>> detect_format("exports/calls.jsonl.gz")
        'jsonl'
        >>> detect_format("../shared/data/traces/azure_llm_2023_conv.csv")
        'azure'
    """
    name = Path(path).name
    if name in KNOWN_FILES:
        return KNOWN_FILES[name]
    suffix = Path(name.removesuffix(".gz")).suffix.lower()
    if suffix in _EXTENSIONS and not (name.endswith(".gz") and suffix == ".parquet"):
        return _EXTENSIONS[suffix]
    raise InputError(
        "cannot tell the format from the file name (expected .csv, .csv.gz, .jsonl, "
        f".jsonl.gz or .parquet); name one of: {', '.join(FORMATS)}",
        file=str(path),
    )


def get_importer(name: str, **options: Any) -> Importer:
    """Return an importer of format ``name`` built with ``options``.

    Raises:
        core.InputError: Unknown format (lists the valid names) or an option the
            format does not take (lists the options it takes).
    """
    if name not in FORMATS:
        raise InputError(f"unknown format {name!r}; valid formats: {', '.join(FORMATS)}")
    importer = FORMATS[name]
    signature = inspect.signature(importer)
    try:
        signature.bind(**options)
    except TypeError as exc:
        accepted = ", ".join(signature.parameters) or "none"
        raise InputError(f"format {name!r}: {exc}; options it accepts: {accepted}") from exc
    return importer(**options)


__all__ = [
    "ERROR",
    "ERROR_FIELD",
    "FORMATS",
    "KNOWN_FILES",
    "LINE",
    "AlpacaEvalImporter",
    "AzureTraceImporter",
    "Composition",
    "CsvImporter",
    "DeviceProfile",
    "Importer",
    "JsonlImporter",
    "MiniSweAgentImporter",
    "MooncakeTraceImporter",
    "ParquetImporter",
    "detect_format",
    "get_importer",
]
