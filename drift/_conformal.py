"""Online adaptive conformal calibration of quantile forecasts, per group and level.

A bundle's split-conformal offsets are fixed at training time; when the service drifts
(the endpoint got slower) its quantiles stay off until a retraining. This calibrator
keeps them calibrated in between: each quantile level ``tau`` of a forecast gets an
additive offset in log-latency space (the forecast in seconds is multiplied by
``exp(offset)``), and after each observed outcome ``y`` the offset takes one step of
online gradient descent on the pinball loss (the quantile-tracking form of Gibbs &
Candès' adaptive conformal inference, Angelopoulos et al. 2023)::

    offset += gamma * (miss - (1 - tau)),    miss = 1 if y > adjusted quantile else 0

so a level missed more often than ``1 - tau`` moves up, one missed less often moves
down. The offset is the sum of a term shared by the served model (an endpoint that got
slower moves every group at once) and a term of the group (served model, prompt class,
device); both take the step. A group's own term applies once it has ``warm_up``
observations (it learns from the start). Since a term moves by ``gamma * (miss_rate -
(1 - tau))`` on average, a term that stays inside ``bound`` has a long-run miss rate
within ``2 * bound / (gamma * n)`` of ``1 - tau`` over any ``n`` of its observations.
Adjusted quantiles are kept non-decreasing (cumulative maximum over the levels).

The state is plain data (:meth:`AdaptiveCalibrator.to_dict`, a versioned JSON-ready
document, never pickle), persisted with the drift state.

Example:
    >>> from core.drift import DriftGroup
    >>> g = DriftGroup(served_model="m", prompt_class="default", device="gpu")
    >>> cal = AdaptiveCalibrator(ConformalConfig(gamma=0.05))
    >>> levels = (0.5, 0.9)
    >>> forecast = np.array([1.0, 2.0])  # seconds; the outcomes are twice as slow
    >>> for _ in range(200):
    ...     issued = cal.adjust(g, levels, forecast)
    ...     cal.update(g, levels, issued, observed=4.0)
    >>> bool(cal.adjust(g, levels, forecast)[1] >= 4.0 * 0.9)
    True
    >>> again = AdaptiveCalibrator.from_dict(cal.to_dict())
    >>> bool(np.array_equal(again.adjust(g, levels, forecast), cal.adjust(g, levels, forecast)))
    True
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

from core.drift import DriftGroup

F64 = npt.NDArray[np.float64]

#: The format version of :meth:`AdaptiveCalibrator.to_dict`; another is not restored.
CONFORMAL_FORMAT = 1


class ConformalConfig(BaseModel):
    """Settings of the adaptive calibrator (frozen).

    Attributes:
        gamma: Step size of each term, log units per observation (0.05: a 0.9 quantile
            missed moves up by ``exp(0.9 * 0.05) - 1``, about 4.6%, per term; one
            covered moves down by 0.5%). Chosen on the agentic calls' 2026-04-11
            slow-down: 0.01 lags it (0.9 coverage 0.82 in a window of 500), 0.05 keeps
            every window within 2.5 points (docs/decisions/2026-12-07-adaptive-conformal.md).
        bound: Offsets (each term) stay within ``[-bound, bound]`` log units.
        warm_up: Observations of a group before its own term applies (until then only
            the served model's shared term does).
        shared: Keep a term shared by the served model's groups.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    gamma: float = Field(default=0.05, gt=0.0, le=1.0)
    bound: float = Field(default=1.0, gt=0.0)
    warm_up: int = Field(default=50, ge=0)
    shared: bool = True


class _Term:
    """Offsets (log units) of one level grid, and the observations that moved them."""

    __slots__ = ("levels", "n", "offsets")

    def __init__(self, levels: tuple[float, ...], offsets: F64 | None = None, n: int = 0) -> None:
        self.levels = levels
        self.offsets = np.zeros(len(levels)) if offsets is None else offsets
        self.n = n

    def as_dict(self) -> dict[str, Any]:
        return {"levels": list(self.levels), "offsets": self.offsets.tolist(), "n": self.n}


class AdaptiveCalibrator:
    """Per-group, per-level online conformal offsets (thread-safe).

    Args:
        config: Step size and bounds; default :class:`ConformalConfig` ().
    """

    def __init__(self, config: ConformalConfig | None = None) -> None:
        self.config = config or ConformalConfig()
        self._groups: dict[str, _Term] = {}  # group key -> its own term
        self._shared: dict[str, _Term] = {}  # served model -> the shared term
        self._lock = threading.Lock()

    def offsets(self, group: DriftGroup, levels: Sequence[float]) -> F64:
        """The offsets (log units, shape ``(K,)``) a forecast of ``group`` gets now."""
        grid = tuple(float(x) for x in levels)
        out = np.zeros(len(grid))
        with self._lock:
            shared = self._shared.get(group.served_model)
            if shared is not None and shared.levels == grid:
                out += shared.offsets
            own = self._groups.get(group.key())
            if own is not None and own.levels == grid and own.n >= self.config.warm_up:
                out += own.offsets
        return out

    def adjust(self, group: DriftGroup, levels: Sequence[float], values: npt.ArrayLike) -> F64:
        """``values`` (seconds, ``(K,)`` or ``(n, K)``) with ``group``'s current offsets."""
        return apply_offsets(values, self.offsets(group, levels))

    def update(
        self, group: DriftGroup, levels: Sequence[float], issued: npt.ArrayLike, observed: float
    ) -> None:
        """Learn from one outcome.

        Args:
            group: The completion's group.
            levels: The level grid of ``issued``.
            issued: The adjusted quantiles the completion was given, seconds, ``(K,)``.
            observed: Its outcome, seconds.

        Call it only after the outcome is known and never before the forecast of that
        completion was issued (its own outcome must not adjust its own forecast).

        Raises:
            ValueError: ``issued`` does not have one value per level.
        """
        grid = tuple(float(x) for x in levels)
        q = np.asarray(issued, dtype=np.float64).reshape(-1)
        if q.shape[0] != len(grid):
            raise ValueError(f"{q.shape[0]} quantiles for {len(grid)} levels")
        miss = (observed > q).astype(np.float64)
        step = self.config.gamma * (miss - (1.0 - np.asarray(grid)))
        bound = self.config.bound
        with self._lock:
            terms = [self._term(self._groups, group.key(), grid)]
            if self.config.shared:
                terms.append(self._term(self._shared, group.served_model, grid))
            for term in terms:
                term.offsets = np.clip(term.offsets + step, -bound, bound)
                term.n += 1

    @staticmethod
    def _term(table: dict[str, _Term], key: str, grid: tuple[float, ...]) -> _Term:
        term = table.get(key)
        if term is None or term.levels != grid:  # new, or another level grid: start afresh
            term = table[key] = _Term(grid)
        return term

    def reset(self, served_model: str) -> None:
        """Forget the offsets of ``served_model`` (a new model version took over)."""
        prefix = f"{served_model}|"
        with self._lock:
            for key in [k for k in self._groups if k.startswith(prefix)]:
                del self._groups[key]
            self._shared.pop(served_model, None)

    def served_models(self) -> list[str]:
        """Served models with any offsets (sorted)."""
        with self._lock:
            keys = {k.split("|", 1)[0] for k in self._groups} | set(self._shared)
        return sorted(keys)

    # --- persistence ----------------------------------------------------------------
    def to_dict(self, served_model: str | None = None) -> dict[str, Any]:
        """The state as a JSON-ready document (all served models, or one).

        Offsets are floats (JSON keeps float64 exactly); ``format`` is
        :data:`CONFORMAL_FORMAT`.
        """
        prefix = None if served_model is None else f"{served_model}|"
        with self._lock:
            groups = {
                k: t.as_dict()
                for k, t in sorted(self._groups.items())
                if prefix is None or k.startswith(prefix)
            }
            shared = {
                k: t.as_dict()
                for k, t in sorted(self._shared.items())
                if served_model is None or k == served_model
            }
        return {"format": CONFORMAL_FORMAT, "groups": groups, "shared": shared}

    def load(self, doc: dict[str, Any]) -> None:
        """Take the terms of ``doc`` (from :meth:`to_dict`), replacing those it names.

        Raises:
            ValueError: Another format, or a malformed document (nothing is taken).
        """
        if doc.get("format") != CONFORMAL_FORMAT:
            raise ValueError(f"conformal state format {doc.get('format')!r} is not supported")
        parsed = {name: _terms(doc.get(name, {})) for name in ("groups", "shared")}
        with self._lock:
            self._groups.update(parsed["groups"])
            self._shared.update(parsed["shared"])

    @classmethod
    def from_dict(
        cls, doc: dict[str, Any], config: ConformalConfig | None = None
    ) -> AdaptiveCalibrator:
        """A calibrator with the state of ``doc`` (see :meth:`load`)."""
        out = cls(config)
        out.load(doc)
        return out


def _terms(raw: Any) -> dict[str, _Term]:
    if not isinstance(raw, dict):
        raise ValueError("conformal terms must be an object")
    out: dict[str, _Term] = {}
    for key, item in raw.items():
        try:
            levels = tuple(float(x) for x in item["levels"])
            offsets = np.asarray(item["offsets"], dtype=np.float64)
            n = int(item["n"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"conformal term {key!r}: {exc}") from exc
        if offsets.shape != (len(levels),) or n < 0 or not np.all(np.isfinite(offsets)):
            raise ValueError(f"conformal term {key!r} is malformed")
        out[str(key)] = _Term(levels, offsets, n)
    return out


def apply_offsets(values: npt.ArrayLike, offsets: npt.ArrayLike) -> F64:
    """Quantiles times ``exp(offsets)``, kept non-decreasing along the levels.

    ``values`` are seconds (``(K,)`` or ``(n, K)``, >= 0), ``offsets`` log units
    broadcasting against them; the cumulative maximum over the levels keeps the
    adjusted quantiles from crossing.

    >>> apply_offsets([1.0, 2.0, 3.0], [0.0, np.log(2.0), -np.log(2.0)]).tolist()
    [1.0, 4.0, 4.0]
    """
    v = np.asarray(values, dtype=np.float64)
    out = v * np.exp(np.asarray(offsets, dtype=np.float64))
    return np.asarray(np.maximum.accumulate(out, axis=-1), dtype=np.float64)
