"""Keep MLflow's chatter out of tailcast's output, with narrow filters.

MLflow writes to its own logger at INFO and draws tqdm bars: a service loading a
champion printed "Downloading artifacts" bars and every training run a CloudPickle
warning about how tailcast's pyfunc wrapper is saved (it holds no user code; the
predictor is a NumPy bundle artifact). :func:`quiet_mlflow` turns off the artifact
progress bars unless the operator set ``MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR``, drops
those two known messages, and leaves every other MLflow warning and error as it is.
"""

from __future__ import annotations

import logging
import os

#: (logger, message start) of the MLflow records tailcast drops.
_DROPPED = (
    ("mlflow.pyfunc", "Passing a Python object as `python_model`"),
    ("mlflow.pyfunc", "Validating input example against model signature"),
    ("mlflow.store.db.utils", "Creating initial MLflow database tables"),
    ("mlflow.store.db.utils", "Updating database tables"),
)


class _Drop(logging.Filter):
    def __init__(self, starts: tuple[str, ...]) -> None:
        super().__init__()
        self._starts = starts

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self._starts)


def quiet_mlflow() -> None:
    """Silence MLflow's artifact bars and the known noise above (idempotent)."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    by_logger: dict[str, tuple[str, ...]] = {}
    for name, start in _DROPPED:
        by_logger[name] = (*by_logger.get(name, ()), start)
    for name, starts in by_logger.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, _Drop) for f in logger.filters):
            logger.addFilter(_Drop(starts))
