"""One retraining per served model across every process sharing the store.

A retraining job of a served model holds the store lock ``retrain:<served_model>``
(:meth:`feature_store.RecordStore.try_lock`: a PostgreSQL advisory lock shared by every
replica and CLI, or an in-process lock of the process owning a DuckDB file) for its
whole run; a job that finds it held does not start (:class:`RetrainLockedError`).

Example:
    >>> from feature_store import DuckDBStore
    >>> store = DuckDBStore(":memory:")
    >>> with retrain_lock(store, "chat"):
    ...     try:
    ...         with retrain_lock(store, "chat"):
    ...             pass
    ...     except RetrainLockedError as exc:
    ...         print(exc)
    another retraining of 'chat' is running (store lock 'retrain:chat' held); try again later
    >>> store.close()
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import ParamSpec, TypeVar

from feature_store import RecordStore, StoreLock

P = ParamSpec("P")
R = TypeVar("R")


def lock_name(served_model: str) -> str:
    """The store lock a retraining of ``served_model`` holds."""
    return f"retrain:{served_model}"


class RetrainLockedError(RuntimeError):
    """Another process (or thread) is retraining the served model right now.

    Attributes:
        served_model: The served model.
    """

    def __init__(self, served_model: str) -> None:
        self.served_model = served_model
        super().__init__(
            f"another retraining of {served_model!r} is running (store lock "
            f"{lock_name(served_model)!r} held); try again later"
        )

    def __reduce__(self) -> tuple[type[RetrainLockedError], tuple[str]]:
        """Pickle by served model (the error crosses from a retraining child process)."""
        return (type(self), (self.served_model,))


@contextmanager
def retrain_lock(store: RecordStore, served_model: str) -> Iterator[StoreLock]:
    """Hold ``retrain:<served_model>`` for the block.

    Raises:
        RetrainLockedError: Another holder has it (the block does not run).
    """
    lock = store.try_lock(lock_name(served_model))
    if lock is None:
        raise RetrainLockedError(served_model)
    with lock:
        yield lock


def holds_retrain_lock(job: Callable[P, R]) -> Callable[P, R]:
    """Make ``job`` (with ``served_model`` and ``store`` parameters) hold the retrain lock."""
    signature = inspect.signature(job)

    @functools.wraps(job)
    def locked(*args: P.args, **kwargs: P.kwargs) -> R:
        bound = signature.bind(*args, **kwargs).arguments
        with retrain_lock(bound["store"], bound["served_model"]):
            return job(*args, **kwargs)

    return locked
