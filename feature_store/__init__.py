"""The feature store: completion records, prompts and embeddings in DuckDB.

Public API: :class:`RecordStore` (the protocol), :class:`DuckDBStore` (the
backend), :class:`RemoteStore` (a DuckDB file owned by a running service, over HTTP),
:func:`open_store`, the broker-file helpers, the wire format and the result types.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from core import Settings, StoreError
from feature_store._base import (
    EndpointStats,
    GroupStats,
    PreviousCall,
    RecordStore,
    StoreLock,
    StoreStats,
)
from feature_store._broker import (
    BrokerInfo,
    advertise,
    broker_path,
    is_lock_conflict,
    lock_holder,
    read_broker,
    withdraw,
)
from feature_store._drift import DriftTables
from feature_store._duckdb import REOPEN_AFTER, DuckDBStore
from feature_store._frames import ENDPOINT_FEATURES, FRAME_COLUMNS
from feature_store._remote import BrokerError, RemoteStore
from feature_store._rows import columns_table
from feature_store._wire import (
    ARROW_STREAM,
    bytes_table,
    read_tables,
    stream_tables,
    table_bytes,
    table_vectors,
    vectors_table,
)

if TYPE_CHECKING:
    from feature_store._postgres import PostgresStore


def open_store(
    target: str | Path | Settings, *, read_only: bool = False, brokered: bool = True
) -> RecordStore:
    """Open (creating if needed) the feature store.

    A DuckDB file another process holds (DuckDB allows one writer) is reached through
    the service that advertises it in its broker file (:class:`RemoteStore`); see
    ``docs/decisions/2026-12-06-shared-store.md``.

    Args:
        target: A DuckDB file path, or :class:`core.Settings`: its ``store_url``
            (PostgreSQL) when set, else its DuckDB ``store_path``.
        read_only: Open a DuckDB file without write access.
        brokered: Fall back to the brokering service when the file is locked (the
            service itself passes ``False``: it must own the file).

    Raises:
        StoreError: The file cannot be opened, e.g. another process holds it and no
            live service brokers it (the message names that process), or the
            brokering service does not answer.
    """
    settings = target if isinstance(target, Settings) else None
    if settings is not None:
        if settings.store_url is not None:
            from feature_store._postgres import PostgresStore

            return PostgresStore(settings.store_url.get_secret_value())
        target = settings.resolved_store_path
    assert not isinstance(target, Settings)
    try:
        return DuckDBStore(target, read_only=read_only)
    except StoreError as exc:
        if not brokered or not is_lock_conflict(str(exc)):
            raise
        return _through_broker(Path(target), exc, settings, read_only)


def _through_broker(
    path: Path, locked: StoreError, settings: Settings | None, read_only: bool
) -> RemoteStore:
    """The service brokering ``path``, checked to answer (else why the file is locked)."""
    holder = lock_holder(str(locked))
    broker = read_broker(path)
    if broker is None or (holder is not None and holder != broker.pid):
        who = f"process {holder}" if holder is not None else "another process"
        raise StoreError(
            f"feature store {path} is locked by {who} and no running tailcast service "
            f"brokers it; wait for that process to finish or stop it, or run "
            f"`tailcast serve` on this home so every command goes through the service"
        ) from locked
    token = (settings or Settings()).api_token
    store = RemoteStore(
        broker.url,
        token=None if token is None else token.get_secret_value(),
        path=str(path),
        read_only=read_only,
    )
    store.ping()
    return store


def __getattr__(name: str) -> Any:
    """Import :class:`PostgresStore` (and psycopg) only when it is used."""
    if name == "PostgresStore":
        from feature_store._postgres import PostgresStore

        return PostgresStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ARROW_STREAM",
    "ENDPOINT_FEATURES",
    "FRAME_COLUMNS",
    "REOPEN_AFTER",
    "BrokerError",
    "BrokerInfo",
    "DriftTables",
    "DuckDBStore",
    "EndpointStats",
    "GroupStats",
    "PostgresStore",
    "PreviousCall",
    "RecordStore",
    "RemoteStore",
    "StoreLock",
    "StoreStats",
    "advertise",
    "broker_path",
    "bytes_table",
    "columns_table",
    "open_store",
    "read_broker",
    "read_tables",
    "stream_tables",
    "table_bytes",
    "table_vectors",
    "vectors_table",
    "withdraw",
]
