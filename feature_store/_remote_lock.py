"""A named lock held by the brokering service for a :class:`RemoteStore`, on a lease.

The service keeps the lock while this process renews its lease (a daemon thread renews
it every third of the lease); when this process dies the renewals stop and the service
frees the lock once the lease runs out.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from feature_store._base import StoreLock

log = logging.getLogger(__name__)

#: ``renew(name, lock_id)`` / ``release(name, lock_id)``: whether the service still had it.
LeaseCall = Callable[[str, str], bool]


class RemoteLock(StoreLock):
    """A held lock of the service's store, kept alive by renewing its lease.

    Args:
        name: The lock's name.
        lock_id: The lease id the service handed out.
        lease_s: The lease, seconds.
        renew: Extends the lease on the service.
        release: Frees the lock on the service.
    """

    def __init__(
        self, name: str, lock_id: str, lease_s: float, renew: LeaseCall, release: LeaseCall
    ) -> None:
        self.name = name
        self.lock_id = lock_id
        self._renew, self._release = renew, release
        self._stop = threading.Event()
        self._lost = threading.Event()
        self._thread = threading.Thread(
            target=self._keep, args=(lease_s / 3,), name=f"lease-{name}", daemon=True
        )
        self._thread.start()

    def _keep(self, every_s: float) -> None:
        while not self._stop.wait(every_s):
            try:
                still = self._renew(self.name, self.lock_id)
            except Exception as exc:  # unreachable service: the lease may run out
                log.warning("renewing lock %r failed: %s", self.name, exc)
                continue
            if not still:
                log.warning("lock %r was lost (its lease ran out)", self.name)
                self._lost.set()
                return

    def held(self) -> bool:
        """Whether the lock is still ours (not released, lease not lost)."""
        return not (self._stop.is_set() or self._lost.is_set())

    def release(self) -> None:
        """Release the lock on the service (idempotent; a failure is logged)."""
        if self._stop.is_set():
            return
        self._stop.set()
        try:
            self._release(self.name, self.lock_id)
        except Exception as exc:  # the lease runs out on its own
            log.warning("releasing lock %r failed: %s", self.name, exc)
