"""Process hygiene for a long-running service: freed memory back, no orphaned children.

:func:`release_free_memory` returns the C heap's free pages to the operating system
(glibc keeps what a process frees in its arenas, so resident memory only rises).
:func:`init_background_child` is the initializer of the service's helper processes (a
drift retraining, the drift-report worker): it lowers their CPU priority and ends them
when the service that started them is gone. A pool worker otherwise outlives a killed
service: Lightning catches SIGTERM during a fit, and an idle worker waits on a pipe it
holds both ends of (seen: a retraining worker of 1.4 GiB left idle for an hour).

Example:
    >>> isinstance(release_free_memory(), bool)
    True
"""

from __future__ import annotations

import ctypes
import functools
import os
import threading
import time
from collections.abc import Callable

#: Seconds between a helper's checks that its parent is alive.
PARENT_CHECK_S = 1.0


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    """The C library's ``malloc_trim`` (glibc); None on musl or macOS."""
    try:
        trim: Callable[[int], int] = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None
    return trim


def release_free_memory() -> bool:
    """Return the C heap's free memory to the OS; False where that is not possible.

    Takes about a millisecond on a service's heap (each arena is walked under its
    lock): call it after work that freed much, never per request.
    """
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True


def init_background_child(niceness: int) -> None:
    """Initializer of a helper process: ``nice(niceness)``, and exit once orphaned.

    A daemon thread checks every :data:`PARENT_CHECK_S` seconds that the parent that
    started this process is still its parent; when it is not (the parent died and the
    process was re-parented), the process exits at once (``os._exit(1)``: no cleanup
    that could block on the dead parent's pipes).

    Args:
        niceness: Added to the process's niceness (Unix); background work yields the
            CPU to the service.
    """
    os.nice(niceness)
    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(PARENT_CHECK_S)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, name="tailcast-parent-watch", daemon=True).start()
