"""A drift-triggered retraining in a child process of its own.

The service that judges drift must not carry the training stack: importing torch,
Lightning and Optuna into ``tailcast serve`` costs a few hundred MiB of resident memory
that is never given back, and a search's Python work competes with the forecast path
for the interpreter. :func:`retrain_isolated` runs :func:`pipelines.retrain.retrain` in
a fresh *spawned* process (no state inherited from the service) that opens the store
from the settings: a PostgreSQL store directly, a DuckDB file through the service that
brokers it. The outcome, or the job's exception, comes back to the caller; the child
exits when the job ends, so its memory goes with it, and when the service dies first
(:func:`core.process.init_background_child`). The child runs at a lower CPU
priority (:data:`NICENESS`): on a machine the service shares, a retraining's fitting
must not take the cores the forecast path needs (a soak saw single-forecast p99 rise
from ~20 ms to 230 ms while a drift-triggered retraining ran at equal priority).
"""

from __future__ import annotations

import logging
import multiprocessing
from concurrent.futures import ProcessPoolExecutor

from core import Settings
from core.process import init_background_child
from pipelines._quiet import quiet_training_stack
from pipelines.retrain import RetrainConfig, RetrainOutcome, retrain

#: Added to the child's niceness (Unix ``nice``): background work yields the CPU.
NICENESS = 10


def run_in_child(
    served_model: str, settings: Settings, config: RetrainConfig | None
) -> RetrainOutcome:
    """The child's job: open the store and the registry, retrain ``served_model``.

    Raises:
        RetrainLockedError: Another process retrains ``served_model`` now.
        Exception: Whatever the job raises (it crosses the process boundary pickled).
    """
    from feature_store import open_store
    from registry import MLflowRegistry

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    quiet_training_stack()
    registry = MLflowRegistry(settings.mlflow_tracking_uri or "")
    with open_store(settings) as store:
        return retrain(served_model, settings, store, registry, config=config, trigger="drift")


def retrain_isolated(
    served_model: str, settings: Settings, config: RetrainConfig | None = None
) -> RetrainOutcome:
    """Run one retraining of ``served_model`` in a spawned child; wait for it.

    Raises:
        RetrainLockedError: Another process retrains ``served_model`` now.
        concurrent.futures.process.BrokenProcessPool: The child died (e.g. killed).
        Exception: What the job raised in the child.
    """
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        max_workers=1,
        mp_context=context,
        initializer=init_background_child,
        initargs=(NICENESS,),
    ) as pool:
        return pool.submit(run_in_child, served_model, settings, config).result()
