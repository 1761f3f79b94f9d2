"""The workflow model bundle: call counts, tool times and per-call latency, composed.

A bundle directory holds ``workflow.json`` (a :class:`WorkflowSpec`), ``arrays.npz``
(the call-count model, tool-time tables, per-step context profiles, the latency
recalibration map) and ``predictor/`` (the per-call latency :class:`Predictor`).
Training writes it (``tailcast train-workflows``); the service loads the newest one
under ``<home>/workflows`` at start. NumPy only at forecast time, plus the sentence
encoder for the task text.

Per-call latency of a call not made yet: the predictor's quantiles for a request at
that step with the served model's median context size at that step (the *profile*)
and the endpoint's current speed, read through ``pit_map`` (the quantile function of
the predictor's PIT values on held-out training calls), so the marginal law of a
future call's latency matches what such calls really took.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from statistics import NormalDist
from typing import Any

import numpy as np
import numpy.typing as npt

from core.predictor import Predictor, text_featurizer
from core.quantiles import ppf_rows
from core.workflow._compose import (
    Draws,
    conditional_cdf,
    count_mean,
    count_quantiles,
    latency_scores,
    pace,
    sample,
    shift_quantiles,
    sum_of_means,
    sum_of_p90,
)
from core.workflow._count import CallCountModel
from core.workflow._spec import (
    ARRAYS_FILE,
    ENDPOINT_COLUMNS,
    F64,
    PREDICTOR_DIR,
    SPEC_FILE,
    LatencyTables,
    WorkflowSpec,
    normal_cdf,
)
from core.workflow._spec import normal_score as _score
from core.workflow._tools import ToolTimes, command_kind

_NORMAL = NormalDist()


class WorkflowModel:
    """Forecast an agentic task's call count, remaining and total time.

    Args:
        spec: The bundle's specification.
        arrays: ``count_embeddings``, ``count_kernels``, ``tool_pooled``,
            ``tool_<kind>``, ``profile_<served_model>`` (``(M, 2)``: median input and
            cached tokens of call ``s``), ``pit_map``, and with ``spec.remaining_buckets``
            ``remaining_pit`` (``(B, P)``: per bucket, the quantiles at
            ``linspace(0, 1, P)`` of the PIT values of true remaining times under the
            raw forecasts of training tasks), and with ``spec.wrapup_markers``
            ``wrapup_pmf`` (``(M,)``: ``P(D + 1 = d)``, ``d = 1 .. M``, for ``D`` the
            calls a task makes after the first wrap-up call).
        predictor: The per-call latency predictor.
    """

    def __init__(
        self, spec: WorkflowSpec, arrays: Mapping[str, npt.NDArray[Any]], predictor: Predictor
    ) -> None:
        self.spec = spec
        self.arrays = {k: np.asarray(v) for k, v in arrays.items()}
        self.predictor = predictor
        a = self.arrays
        self.counts = CallCountModel(
            a["count_embeddings"],
            a["count_kernels"],
            spec.run_served_models,
            k=spec.k,
            shrink=spec.shrink,
            boost=spec.boost,
        )
        self.tools = ToolTimes(a["tool_pooled"], {k: a[f"tool_{k}"] for k in spec.tool_kinds})
        self._text = text_featurizer(spec.text)

    @property
    def max_calls(self) -> int:
        """Largest call count the model gives probability to."""
        return self.counts.max_calls

    # --- persistence ---------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write the bundle directory; returns its path."""
        out = Path(path)
        out.mkdir(parents=True, exist_ok=True)
        (out / SPEC_FILE).write_text(self.spec.model_dump_json(indent=2))
        np.savez(out / ARRAYS_FILE, **self.arrays)  # type: ignore[arg-type]
        self.predictor.save(out / PREDICTOR_DIR)
        return out

    @classmethod
    def load(cls, path: str | Path) -> WorkflowModel:
        """Load a bundle directory written by :meth:`save`."""
        root = Path(path)
        spec = WorkflowSpec.model_validate(json.loads((root / SPEC_FILE).read_text()))
        with np.load(root / ARRAYS_FILE, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
        return cls(spec, arrays, Predictor.load(root / PREDICTOR_DIR))

    # --- parts ---------------------------------------------------------------------
    def embed(self, texts: Sequence[str | None]) -> npt.NDArray[np.float32]:
        """Text embeddings of task statements, shape ``(n, d)``."""
        if self._text is None:
            return np.zeros((len(texts), 0), dtype=np.float32)
        return self._text.transform(texts)

    def count_cdf(self, embedding: npt.NDArray[np.floating], served_model: str) -> F64:
        """Call-count CDF ``P(N <= n)``, ``n = 1 .. M``, of one task."""
        return self.counts.cdf(embedding, served_model)

    def step_values(
        self, served_model: str, device: str, endpoint: Mapping[str, float | None] | None = None
    ) -> F64:
        """The predictor's quantiles (seconds) for calls ``0 .. M - 1``, shape ``(M, K)``.

        Each call is a request at its step with the served model's profile context and
        the given endpoint features (:data:`ENDPOINT_COLUMNS`; missing: none).

        Raises:
            KeyError: For a served model without a profile.
        """
        if served_model not in self.spec.served_models:
            raise KeyError(served_model)
        profile = self.arrays[f"profile_{served_model}"]
        m = profile.shape[0]
        ep = endpoint or {}
        cols: dict[str, Any] = {
            "served_model": [served_model] * m,
            "device": [device] * m,
            "step": np.arange(m, dtype=np.float64),
            "input_tokens": profile[:, 0],
            "cached_tokens": profile[:, 1],
            **{c: [ep.get(c)] * m for c in ENDPOINT_COLUMNS},
        }
        return np.asarray(np.maximum(self.predictor.predict(cols, m), 0.0), dtype=np.float64)

    def latency(
        self, served_model: str, device: str, endpoint: Mapping[str, float | None] | None = None
    ) -> LatencyTables:
        """Recalibrated per-call latency tables for calls ``0 .. M - 1``.

        Args:
            served_model: One of ``spec.served_models``.
            device: Device or endpoint the calls go to.
            endpoint: Endpoint features now (:data:`ENDPOINT_COLUMNS`).

        Raises:
            KeyError: For a served model without a profile.
        """
        values = self.step_values(served_model, device, endpoint)
        levels = np.asarray(self.predictor.spec.levels, dtype=np.float64)
        z = np.linspace(-self.spec.z_max, self.spec.z_max, self.spec.z_points)
        pit_map = self.arrays["pit_map"]
        pit_grid = np.linspace(0.0, 1.0, pit_map.shape[0])

        def recalibrated(u: F64) -> F64:
            return np.asarray(np.clip(np.interp(u, pit_grid, pit_map), 1e-6, 1 - 1e-6))

        by_z = ppf_rows(levels, values, recalibrated(normal_cdf(z)), lower=0.0)
        mid = (np.arange(200) + 0.5) / 200
        mean = ppf_rows(levels, values, recalibrated(mid), lower=0.0).mean(axis=1)
        p90 = ppf_rows(levels, values, recalibrated(np.array([0.9])), lower=0.0)[:, 0]
        return LatencyTables(z=z, by_z=by_z, mean=mean, p90=p90)

    # --- composition ---------------------------------------------------------------
    def wrapup_step(self, commands: Sequence[str | None] | None, steps_done: int) -> int | None:
        """The first call among ``0 .. steps_done - 1`` whose command starts the wrap-up."""
        if not self.spec.wrapup_markers or not commands:
            return None
        for step, command in enumerate(list(commands)[:steps_done]):
            if command and any(marker in command for marker in self.spec.wrapup_markers):
                return step
        return None

    def progress_cdf(
        self, cdf: F64, steps_done: int, commands: Sequence[str | None] | None = None
    ) -> F64:
        """The call-count CDF given the task's progress so far.

        Before the wrap-up (or without commands) this is ``cdf``; once call ``s``
        issued a wrap-up command (:meth:`wrapup_step`), ``N = s + 1 + D`` with ``D``
        from ``wrapup_pmf``, over ``1 .. 2 M`` (what :func:`sample` then conditions on
        ``N > steps_done``).

        Args:
            cdf: The task's call-count CDF from its text (:meth:`count_cdf`).
            steps_done: Calls returned so far.
            commands: Commands of the returned calls ``0, 1, ...`` in order.
        """
        step = self.wrapup_step(commands, steps_done)
        if step is None:
            return cdf
        pmf = self.arrays["wrapup_pmf"]
        size = 2 * self.max_calls
        out = np.zeros(size)
        start = min(step, size - 1)  # N = step + 1 + D: index N - 1 = step + D
        take = min(pmf.shape[0], size - start)
        out[start : start + take] = pmf[:take]
        c = np.cumsum(out)
        c /= c[-1]
        c[-1] = 1.0
        return np.asarray(np.minimum(c, 1.0), dtype=np.float64)

    def sample_remaining(
        self,
        cdf: F64,
        tables: LatencyTables,
        draws: Draws,
        steps_done: int = 0,
        pending_command: str | None = None,
        latencies_s: Sequence[float | None] | None = None,
    ) -> tuple[npt.NDArray[np.int64], F64, tuple[float, float]]:
        """Raw Monte Carlo samples of the call count and the remaining time (seconds).

        Args: as :meth:`compose`.

        Returns:
            ``(n, remaining, shared)``: samples (``(J,)`` each) and the ``(mean, sd)`` of
            the task's shared latency factor they used.
        """
        pending = None
        if pending_command is not None and steps_done >= 1:
            pending = self.tools.table(command_kind(pending_command))
        shared = (0.0, 1.0)
        if self.spec.pace and latencies_s:
            observed = np.asarray(list(latencies_s)[:steps_done], dtype=np.float64)
            shared = pace(latency_scores(tables.by_z, tables.z, observed), self.spec.rho)
        n, remaining = sample(
            tables.by_z,
            tables.z,
            self.tools.pooled,
            cdf,
            draws,
            steps_done,
            self.spec.rho,
            pending,
            shared,
        )
        return n, remaining, shared

    def remaining_levels(self, levels: F64, steps_done: int) -> F64:
        """Sample levels that give calibrated remaining-time quantiles at ``levels``.

        The quantile ``tau`` of the remaining time is the raw samples' quantile at the
        recalibration map read at ``tau``. With ``spec.remaining_knots``, the map at
        ``x = log1p(steps_done)`` between knots ``x_j <= x < x_{j+1}`` is
        ``Phi((1 - w) Phi^-1(r_j(tau)) + w Phi^-1(r_{j+1}(tau)))`` with
        ``w = (x - x_j) / (x_{j+1} - x_j)``: each row is
        ``Phi(shift + ratio Phi^-1(tau))``, so this interpolates the shift and the ratio
        linearly; row 0 applies before the first knot, the last row after the last.
        Without knots, the row of the bucket of ``steps_done`` (the identity below the
        first bucket edge or without buckets).
        """
        lv = np.asarray(levels, dtype=np.float64)
        buckets = self.spec.remaining_buckets
        b = int(np.searchsorted(buckets, steps_done, side="right")) - 1
        if b < 0:
            return lv
        rows = self.arrays["remaining_pit"]
        grid = np.linspace(0.0, 1.0, rows.shape[1])
        knots = self.spec.remaining_knots
        if not knots:
            return np.asarray(np.interp(lv, grid, rows[b]))
        x = math.log1p(steps_done)
        j = int(np.searchsorted(knots, x, side="right"))
        if j == 0 or j == len(knots):
            return np.asarray(np.interp(lv, grid, rows[max(j - 1, 0)]))
        w = (x - knots[j - 1]) / (knots[j] - knots[j - 1])
        lo, hi = np.interp(lv, grid, rows[j - 1]), np.interp(lv, grid, rows[j])
        out = [
            a if a in (0.0, 1.0) else _NORMAL.cdf((1 - w) * _score(a) + w * _score(c))
            for a, c in zip(lo.tolist(), hi.tolist(), strict=True)
        ]
        return np.asarray(out, dtype=np.float64)

    def compose(
        self,
        cdf: F64,
        tables: LatencyTables,
        draws: Draws,
        levels: Sequence[float],
        steps_done: int = 0,
        elapsed_s: float | None = None,
        pending_command: str | None = None,
        latencies_s: Sequence[float | None] | None = None,
        commands: Sequence[str | None] | None = None,
    ) -> dict[str, Any]:
        """Quantiles of the call count, remaining and total time of one task.

        Args:
            cdf: The task's call-count CDF (:meth:`count_cdf`).
            tables: Per-call latency (:meth:`latency`).
            draws: Common random numbers (cover :attr:`max_calls` calls).
            levels: Quantile levels in (0, 1).
            steps_done: Calls returned so far; the task has not finished.
            elapsed_s: Seconds since the first call returned, if known: the total is
                then ``elapsed_s`` + remaining (exact); otherwise the total is sampled.
            pending_command: The last returned call's command (its tool run is in flight).
            latencies_s: Latencies (seconds) of the returned calls ``0, 1, ...`` in order
                (``None`` for one not recorded; entries past ``steps_done`` are ignored):
                with ``spec.pace`` the task's observed pace conditions its future calls
                (:func:`core.workflow.pace`).
            commands: Commands of the returned calls ``0, 1, ...`` in order (``None``
                where unknown; entries past ``steps_done`` are ignored): a wrap-up
                command switches the call count to the wrap-up law (:meth:`progress_cdf`).

        Returns:
            ``call_count``, ``remaining_s``, ``total_s`` (each ``quantiles`` and
            ``mean``) and the point compositions ``sum_of_means_s``/``sum_of_p90_s`` of
            the remaining time. Remaining-time quantiles (and the total built from them)
            are recalibrated by :meth:`remaining_levels`; the mean is that of the
            recalibrated law; ``remaining_raw_s`` holds the raw samples' quantiles.
        """
        lv = np.asarray(levels, dtype=np.float64)
        cdf = self.progress_cdf(cdf, steps_done, commands)
        n, remaining, shared = self.sample_remaining(
            cdf, tables, draws, steps_done, pending_command, latencies_s
        )
        ordered = np.sort(remaining)
        remaining_q = _sorted_quantiles(ordered, self.remaining_levels(lv, steps_done))
        mid = (np.arange(100) + 0.5) / 100
        remaining_mean = float(
            _sorted_quantiles(ordered, self.remaining_levels(mid, steps_done)).mean()
        )
        cond = conditional_cdf(cdf, steps_done)
        if elapsed_s is not None or steps_done <= 1:
            offset = elapsed_s or 0.0
            total_q = shift_quantiles(remaining_q, offset)
            total_mean = remaining_mean + offset
        else:
            rho = self.spec.rho
            _, total = sample(tables.by_z, tables.z, self.tools.pooled, cond, draws, 0, rho)
            total_q, total_mean = np.quantile(total, lv), float(total.mean())
        tool_p90 = float(self.tools.quantiles(np.array([0.9]))[0])
        return {
            "call_count": {
                "quantiles": count_quantiles(cond, lv).tolist(),
                "mean": count_mean(cond),
            },
            "remaining_s": {"quantiles": remaining_q.tolist(), "mean": remaining_mean},
            "remaining_raw_s": _sorted_quantiles(ordered, lv).tolist(),
            "total_s": {"quantiles": np.asarray(total_q).tolist(), "mean": total_mean},
            "sum_of_means_s": sum_of_means(tables.mean, self.tools.mean(), cdf, steps_done),
            "sum_of_p90_s": sum_of_p90(tables.p90, tool_p90, cdf, steps_done),
            "samples": int(n.shape[0]),
            "pace": list(shared),
        }


def _sorted_quantiles(ordered: F64, levels: F64) -> F64:
    """Quantiles (linear interpolation, as ``np.quantile``) of already sorted samples."""
    pos = np.clip(np.asarray(levels, dtype=np.float64), 0.0, 1.0) * (ordered.shape[0] - 1)
    return np.asarray(np.interp(pos, np.arange(ordered.shape[0]), ordered), dtype=np.float64)
