"""The broker file: how a service that owns a DuckDB store tells other processes where it is.

DuckDB allows one read-write process per file. While ``tailcast serve`` holds
``<home>/store.duckdb`` it writes ``<store file>.broker.json`` beside it (service URL,
pid, store path); :func:`feature_store.open_store` reads it when the file is locked
and talks to the service instead (:class:`feature_store.RemoteStore`). The file is
written atomically (a temporary file renamed over it) and removed at shutdown; a file
left by a process that died is stale and ignored.

Example:
    >>> broker_path("/tmp/tc/store.duckdb").name
    'store.duckdb.broker.json'
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

BROKER_SUFFIX = ".broker.json"
_LOCK_PID = re.compile(r"\(PID (\d+)\)")


@dataclass(frozen=True, slots=True)
class BrokerInfo:
    """A service brokering a store file.

    Attributes:
        url: Base URL of the service (``http://host:port``, no trailing slash).
        pid: Process id of the service.
        store: Absolute path of the store file it owns.
    """

    url: str
    pid: int
    store: str


def broker_path(store: str | Path) -> Path:
    """The broker file of ``store``: ``<store file>.broker.json`` beside it."""
    path = Path(store)
    return path.with_name(path.name + BROKER_SUFFIX)


def pid_alive(pid: int) -> bool:
    """Whether a process with id ``pid`` exists (on this machine)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except OSError:
        return False
    return True


def advertise(store: str | Path, url: str, pid: int | None = None) -> BrokerInfo:
    """Write the broker file of ``store`` atomically (replacing any older one).

    Args:
        store: The store file the calling service owns.
        url: The service's base URL as other local processes reach it.
        pid: The service's process id (default: this process).

    Returns:
        What was written.
    """
    info = BrokerInfo(url=url.rstrip("/"), pid=pid or os.getpid(), store=_absolute(store))
    target = broker_path(store)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=target.name + ".", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(asdict(info), out)
            out.flush()
            os.fsync(out.fileno())
        Path(tmp).replace(target)
    except BaseException:
        with contextlib.suppress(OSError):
            Path(tmp).unlink()
        raise
    return info


def withdraw(store: str | Path, info: BrokerInfo) -> bool:
    """Remove the broker file of ``store`` if it is still ``info`` (ours); whether it was."""
    if read_broker(store, live_only=False) != info:
        return False
    with contextlib.suppress(FileNotFoundError):
        broker_path(store).unlink()
    return True


def read_broker(store: str | Path, *, live_only: bool = True) -> BrokerInfo | None:
    """The broker of ``store``, or ``None`` (no file, unreadable, another store, or stale).

    Args:
        store: The store file.
        live_only: Ignore a file whose process no longer runs (default).
    """
    try:
        raw = json.loads(broker_path(store).read_text(encoding="utf-8"))
        info = BrokerInfo(url=str(raw["url"]), pid=int(raw["pid"]), store=str(raw["store"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if info.store != _absolute(store):
        return None
    if live_only and not pid_alive(info.pid):
        return None
    return info


def lock_holder(message: str) -> int | None:
    """The pid named by DuckDB's ``Conflicting lock is held in ... (PID n)`` error, if any."""
    match = _LOCK_PID.search(message)
    return int(match.group(1)) if match else None


def is_lock_conflict(message: str) -> bool:
    """Whether a DuckDB open error says another process holds the file's lock."""
    return "Could not set lock" in message or "Conflicting lock" in message


def _absolute(store: str | Path) -> str:
    return str(Path(store).expanduser().resolve())
