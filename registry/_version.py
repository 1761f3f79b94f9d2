"""One registered version as tailcast reads it: aliases, quality and how it came to be.

A training or retraining job tags its version: ``mean_pinball`` (validation loss),
``trigger`` (``manual``, ``schedule``, ``drift``...), ``kind`` (``fallback`` for the
empirical fallback a first run serves until a searched champion wins) and, for a
retraining, ``outcome`` (``promoted`` or ``not promoted``) with ``outcome_detail`` (the
held-out comparison that decided it), so a challenger that lost is visible wherever
versions are listed.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion as MlflowModelVersion


class ModelVersion(BaseModel):
    """One registered version.

    Attributes:
        name: Registered model name.
        version: Version number.
        aliases: Aliases pointing at it (``champion``, ``challenger``...).
        run_id: MLflow run that logged it.
        created_at: Registration time (UTC).
        mean_pinball: Validation mean pinball loss, seconds (when tagged).
        trigger: What started the job that made it (when tagged).
        outcome: ``promoted`` or ``not promoted`` for a retraining's challenger.
        outcome_detail: Why (the held-out comparison), for people.
        kind: ``fallback`` for an empirical fallback; None for a trained network.
    """

    model_config = ConfigDict(frozen=True)

    name: str
    version: int
    aliases: tuple[str, ...]
    run_id: str | None
    created_at: datetime
    mean_pinball: float | None = None
    trigger: str | None = None
    outcome: str | None = None
    outcome_detail: str | None = None
    kind: str | None = None


#: Run tags :meth:`MLflowRegistry.log_training` copies onto the registered version.
VERSION_TAGS = ("trigger", "kind")


def to_version(mv: MlflowModelVersion, aliases: Iterable[str] = ()) -> ModelVersion:
    """A :class:`ModelVersion` from MLflow's, with extra ``aliases`` merged in."""
    tags: dict[str, str] = dict(mv.tags or {})
    return ModelVersion(
        name=mv.name,
        version=int(mv.version),
        aliases=tuple(sorted({*(mv.aliases or []), *aliases})),
        run_id=mv.run_id,
        created_at=datetime.fromtimestamp(int(mv.creation_timestamp) / 1000, tz=UTC),
        mean_pinball=float_or_none(tags.get("mean_pinball")),
        trigger=tags.get("trigger"),
        outcome=tags.get("outcome"),
        outcome_detail=tags.get("outcome_detail"),
        kind=tags.get("kind"),
    )


def float_or_none(text: str | None) -> float | None:
    """``text`` as a float; None when absent, not a number or NaN."""
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return None if math.isnan(value) else value
