"""The workflow bundle's specification, files and shared helpers.

:class:`WorkflowSpec` is ``workflow.json`` of a bundle directory (see
:mod:`core.workflow._model`); :func:`bundle_versions` finds the bundles under a home.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from statistics import NormalDist

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

from core.predictor import TextSpec

_NORMAL = NormalDist()


def normal_score(u: float) -> float:
    """Normal score of a probability, clipped into the open unit interval."""
    return _NORMAL.inv_cdf(min(max(u, 1e-300), 1.0 - 1e-16))


F64 = npt.NDArray[np.float64]

SPEC_FILE, ARRAYS_FILE, PREDICTOR_DIR = "workflow.json", "arrays.npz", "predictor"
#: Text variant of the call-count model (first 3 encoder layers: best on held-out tasks).
COUNT_TEXT = TextSpec(kind="encoder", encoder_layers=3, max_tokens=256)
#: Bundles live in ``<home>/workflows/v0001``, ``v0002``, ...; the newest one is served.
WORKFLOWS_DIR = "workflows"
#: Endpoint columns the per-call predictor reads.
ENDPOINT_COLUMNS = ("ep_completions", "ep_median_tokens_per_s", "ep_median_latency_s")


class WorkflowSpec(BaseModel):
    """Configuration and provenance of a workflow bundle (frozen data).

    Attributes:
        format_version: Bundle format version.
        served_models: Served models with a context profile (the ones it forecasts).
        run_served_models: Served model of each training run of the call-count model.
        text: Text featurizer of the call-count model.
        k: Nearest training runs weighted up by the call-count model.
        shrink: Weight of the text-blind empirical part of the call-count model.
        boost: Weight multiplier of same-served-model runs.
        bandwidth: Width of each run's call-count kernel, in log calls.
        rho: Correlation of the latencies of one task's calls (Gaussian copula).
        tool_kinds: Command kinds with their own tool-time table.
        pace: Condition future calls on the task's observed pace (the latencies of its
            returned calls, when given). Off by default: on the agentic runs it made
            remaining-time forecasts worse (see ``docs/workflows.md``).
        wrapup_markers: Substrings of a command that starts a task's wrap-up (``git diff``,
            ``patch.txt``: the agent writes out its patch); once one was issued, the
            call count follows ``wrapup_pmf`` (calls after the first such call)
            instead of the text law.
        remaining_buckets: Increasing lower edges (calls done) of the buckets with a
            remaining-time recalibration map (row ``b`` of ``remaining_pit``); below the
            first edge (or with none) the raw composition is used.
        remaining_knots: Where each row of ``remaining_pit`` applies, in ``log1p`` of
            calls done (increasing, one per bucket: the mean over the bucket's scored
            runs). Given, the map's location shift and spread ratio (in normal scores)
            are interpolated linearly in ``log1p(calls done)`` between knots and held
            constant beyond the ends; empty, each bucket's map is used as a step.
        z_max: The latency tables cover normal scores in [-z_max, z_max].
        z_points: Points of that grid.
        metadata: Provenance (training data, date, version).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    format_version: int = 1
    served_models: tuple[str, ...]
    run_served_models: tuple[str, ...]
    text: TextSpec = COUNT_TEXT
    k: int = Field(default=10, ge=1)
    shrink: float = Field(default=0.5, gt=0)
    boost: float = Field(default=2.0, gt=0)
    bandwidth: float = Field(default=0.1, ge=0)
    rho: float = Field(default=0.0, ge=0, lt=1)
    tool_kinds: tuple[str, ...] = ()
    pace: bool = False
    wrapup_markers: tuple[str, ...] = ()
    remaining_buckets: tuple[int, ...] = ()
    remaining_knots: tuple[float, ...] = ()
    z_max: float = 4.0
    z_points: int = Field(default=257, ge=3)
    metadata: dict[str, str] = Field(default_factory=dict)


@dataclass(frozen=True)
class LatencyTables:
    """Per-call latency of one (served model, device, endpoint state), seconds.

    Attributes:
        z: Normal-score grid, shape ``(G,)``.
        by_z: Latency of call ``s`` at each score, shape ``(M, G)``.
        mean: Mean latency of call ``s``, shape ``(M,)``.
        p90: P90 latency of call ``s``, shape ``(M,)``.
    """

    z: F64
    by_z: F64
    mean: F64
    p90: F64


def bundle_versions(home: Path) -> list[tuple[int, Path]]:
    """Complete workflow bundles under ``home``, oldest first, as ``(version, path)``."""
    root = Path(home) / WORKFLOWS_DIR
    found = []
    for path in root.glob("v[0-9][0-9][0-9][0-9]") if root.is_dir() else []:
        if (path / SPEC_FILE).is_file() and (path / ARRAYS_FILE).is_file():
            found.append((int(path.name[1:]), path))
    return sorted(found)


def normal_cdf(z: F64) -> F64:
    """Standard normal CDF (element-wise, via ``math.erf``)."""
    return np.array([0.5 * (1.0 + math.erf(v / math.sqrt(2.0))) for v in np.ravel(z)])
