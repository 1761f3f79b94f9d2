"""Store locks the service holds for remote clients, each for a renewable lease.

A :class:`feature_store.RemoteStore` asks the service brokering a DuckDB file for a
named lock (``retrain:<served_model>``...). The service takes it from its own store
(:meth:`~feature_store.RecordStore.try_lock`, in-process for DuckDB) and keeps it while
the client renews the lease; a client that dies stops renewing and the lock is freed
when the lease runs out, as a PostgreSQL advisory lock is freed when its connection dies.
"""

from __future__ import annotations

import threading
import uuid
import weakref
from dataclasses import dataclass, field

from feature_store import RecordStore, StoreLock


@dataclass
class _Lease:
    lock_id: str
    lock: StoreLock
    lease_s: float
    timer: threading.Timer | None = field(default=None, repr=False)


class LeasedLocks:
    """The named locks held on behalf of remote clients of one store.

    Args:
        store: The store whose locks are handed out.
    """

    def __init__(self, store: RecordStore) -> None:
        self._store = store
        self._held: dict[str, _Lease] = {}
        self._mutex = threading.Lock()

    def acquire(self, name: str, lease_s: float) -> str | None:
        """Take ``name`` for ``lease_s`` seconds: the lease id, or ``None`` while it is held."""
        lock = self._store.try_lock(name)
        if lock is None:
            return None
        lease = _Lease(lock_id=uuid.uuid4().hex, lock=lock, lease_s=lease_s)
        with self._mutex:
            self._held[name] = lease
            self._arm(name, lease)
        return lease.lock_id

    def renew(self, name: str, lock_id: str) -> bool:
        """Extend the lease by its length; ``False`` when it is no longer this client's."""
        with self._mutex:
            lease = self._held.get(name)
            if lease is None or lease.lock_id != lock_id or not lease.lock.held():
                return False
            self._arm(name, lease)
            return True

    def release(self, name: str, lock_id: str) -> bool:
        """Free ``name`` if ``lock_id`` holds it; whether it did."""
        with self._mutex:
            lease = self._held.get(name)
            if lease is None or lease.lock_id != lock_id:
                return False
            self._drop(name, lease)
        return True

    def release_all(self) -> None:
        """Free every lease (the service shuts down)."""
        with self._mutex:
            for name, lease in list(self._held.items()):
                self._drop(name, lease)

    def _arm(self, name: str, lease: _Lease) -> None:
        if lease.timer is not None:
            lease.timer.cancel()
        lease.timer = threading.Timer(lease.lease_s, self._expire, (name, lease.lock_id))
        lease.timer.daemon = True
        lease.timer.start()

    def _expire(self, name: str, lock_id: str) -> None:
        with self._mutex:
            lease = self._held.get(name)
            if lease is not None and lease.lock_id == lock_id:
                self._drop(name, lease)

    def _drop(self, name: str, lease: _Lease) -> None:
        if lease.timer is not None:
            lease.timer.cancel()
        lease.lock.release()
        del self._held[name]


_BY_STORE: weakref.WeakKeyDictionary[RecordStore, LeasedLocks] = weakref.WeakKeyDictionary()
_BY_STORE_MUTEX = threading.Lock()


def leases_for(store: RecordStore) -> LeasedLocks:
    """The one :class:`LeasedLocks` of ``store`` (made on first use)."""
    with _BY_STORE_MUTEX:
        leases = _BY_STORE.get(store)
        if leases is None:
            leases = _BY_STORE[store] = LeasedLocks(store)
        return leases
