"""The feature store: completion records, prompts and embeddings in DuckDB.

Public API: :class:`RecordStore` (the protocol), :class:`DuckDBStore` (the
backend), :func:`open_store`, and the result types.
"""

from __future__ import annotations

from pathlib import Path

from feature_store._base import EndpointStats, GroupStats, RecordStore, StoreStats
from feature_store._drift import DriftTables
from feature_store._duckdb import DuckDBStore
from feature_store._frames import ENDPOINT_FEATURES, FRAME_COLUMNS


def open_store(path: str | Path, *, read_only: bool = False) -> RecordStore:
    """Open (creating if needed) the feature store at ``path``."""
    return DuckDBStore(path, read_only=read_only)


__all__ = [
    "ENDPOINT_FEATURES",
    "FRAME_COLUMNS",
    "DriftTables",
    "DuckDBStore",
    "EndpointStats",
    "GroupStats",
    "RecordStore",
    "StoreStats",
    "open_store",
]
