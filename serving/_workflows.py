"""The workflow bundle a service serves: loaded once at start, with its random numbers.

The lifespan (``serving.app``) calls :func:`load_workflows` and keeps the result on the
app; routes get it through ``serving.deps.WorkflowsDep``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from core import Settings
from core.workflow import Draws, WorkflowModel, bundle_versions, draw

logger = logging.getLogger(__name__)

#: Monte Carlo samples of the common random numbers, drawn once at start.
SAMPLES = 1000


@dataclass(frozen=True)
class WorkflowService:
    """The loaded workflow bundle and its common random numbers."""

    model: WorkflowModel
    version: int
    draws: Draws


def load_workflows(settings: Settings, seed: int = 0) -> WorkflowService | None:
    """Load the newest bundle under ``<home>/workflows`` (``None`` if there is none)."""
    versions = bundle_versions(settings.home)
    if not versions:
        logger.info(
            "no workflow bundle under %s; /v1/forecasts/workflow answers 503", settings.home
        )
        return None
    version, path = versions[-1]
    model = WorkflowModel.load(path)
    return WorkflowService(model, version, draw(SAMPLES, 2 * model.max_calls, seed))
