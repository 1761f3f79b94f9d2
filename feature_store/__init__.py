"""The feature store: completion records, prompts and embeddings in DuckDB.

Public API: :class:`RecordStore` (the protocol), :class:`DuckDBStore` (the
backend), :func:`open_store`, and the result types.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from core import Settings
from feature_store._base import EndpointStats, GroupStats, RecordStore, StoreLock, StoreStats
from feature_store._drift import DriftTables
from feature_store._duckdb import DuckDBStore
from feature_store._frames import ENDPOINT_FEATURES, FRAME_COLUMNS

if TYPE_CHECKING:
    from feature_store._postgres import PostgresStore


def open_store(target: str | Path | Settings, *, read_only: bool = False) -> RecordStore:
    """Open (creating if needed) the feature store.

    Args:
        target: A DuckDB file path, or :class:`core.Settings`: its ``store_url``
            (PostgreSQL) when set, else its DuckDB ``store_path``.
        read_only: Open a DuckDB file without write access.
    """
    if isinstance(target, Settings):
        if target.store_url is not None:
            from feature_store._postgres import PostgresStore

            return PostgresStore(target.store_url.get_secret_value())
        target = target.resolved_store_path
    return DuckDBStore(target, read_only=read_only)


def __getattr__(name: str) -> Any:
    """Import :class:`PostgresStore` (and psycopg) only when it is used."""
    if name == "PostgresStore":
        from feature_store._postgres import PostgresStore

        return PostgresStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ENDPOINT_FEATURES",
    "FRAME_COLUMNS",
    "DriftTables",
    "DuckDBStore",
    "EndpointStats",
    "GroupStats",
    "PostgresStore",
    "RecordStore",
    "StoreLock",
    "StoreStats",
    "open_store",
]
