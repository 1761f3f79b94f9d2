"""The simulation job: real trace + device measurements + a trained predictor -> simulator.

Wires the feature store's importers and device profiles, training (a per-call
quantile predictor of service time, trained on the part of the trace that is not
simulated) and :mod:`scheduler_hooks.sim`:

1. :func:`load_trace` reads ``azure``, ``mooncake`` (independent requests) or
   ``minisweagent`` (agentic sessions: each call is submitted when the previous call
   of its task has completed plus that call's tool time) and marks which requests
   train the predictor: the first ``train_fraction`` of an arrival trace by time, or
   for sessions the tasks outside the test fold of :func:`training.split_by_group`
   salted with :data:`SESSION_SALT` (20% of the tasks, replayed);
2. :func:`service_times` composes each request's true service time on each device
   type from ``device_latency/splitwise_perf_model.csv`` (Llama2-70B, tensor
   parallel 8, or 4 / 2 for the ``-tp4`` / ``-tp2`` device names; one real
   measurement drawn per request and device): prefill of the
   uncached prompt tokens at batch 1, plus output tokens x the per-token time, the
   decode part scaled by the measured ratio of per-token time at batch ``slots`` to
   batch 1 (each of a replica's ``slots`` requests runs at the batch-``slots`` speed);
3. :func:`train_forecaster` trains a predictor of that service time through
   :func:`training.train_predictor` (features: token counts and device; for the
   agentic sessions also the prompt text, the step and the previous call; for
   Mooncake the turn and the previous turn's output length, from the importer's
   conversations), and the
   simulator receives its forecasts as a :data:`scheduler_hooks.ForecastFn`;
4. :func:`run_policies` replays the simulated part with arrival times scaled so the
   offered load is ``load`` x the cluster's capacity.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from core.predictor import Predictor
from scheduler_hooks import ForecastBook
from scheduler_hooks.routing import make_router
from scheduler_hooks.scaling import make_scaler
from scheduler_hooks.sim import CapacityEvent, SimConfig, SimResult, Workload, simulate

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

ROOT = Path(__file__).resolve().parents[1]
DEVICE_DATA = ROOT.parent / "shared" / "data" / "device_latency" / "splitwise_perf_model.csv"
"""Default device measurements (the shared data next to the checkout)."""

#: Cluster device names -> the splitwise measurement's hardware column.
HARDWARE: dict[str, str] = {
    "a100": "a100-80gb",
    "h100": "h100-80gb",
    "h100-pcap": "h100-80gb-pcap",
    "a100-tp4": "a100-80gb",
    "a100-tp2": "a100-80gb",
    "h100-tp4": "h100-80gb",
    "h100-tp2": "h100-80gb",
}
#: Tensor-parallel degree of the measurement per device name (absent: the largest, 8).
TENSOR_PARALLEL: dict[str, int] = {"a100-tp4": 4, "a100-tp2": 2, "h100-tp4": 4, "h100-tp2": 2}
PROFILE_MODEL = "llama2-70b"
FORMATS = ("azure", "mooncake", "minisweagent")
MAX_THINK_S = 60.0
SESSION_SALT = "tailcast-simulate"


@dataclass
class TraceData:
    """A trace as the simulation job needs it.

    Attributes:
        times: Submission time of each request relative to the trace start, seconds
            (for session calls: the task's first call only is meaningful).
        parent: Previous call of the same task (``-1``: first call / independent).
        think: Tool time between the parent's completion and this call, seconds.
        cols: Request columns for the predictor (record fields and workflow features).
        output_tokens: Generated tokens (true; only the service-time composition uses them).
        train: Rows that train the predictor (never simulated).
        sessions: Whether calls depend on each other.
    """

    times: F64
    parent: I64
    think: F64
    cols: dict[str, Any]
    output_tokens: F64
    train: npt.NDArray[np.bool_]
    sessions: bool

    @property
    def n(self) -> int:
        """Rows."""
        return len(self.times)

    def subset(self, rows: I64) -> TraceData:
        """The rows ``rows`` (parents re-indexed; parents outside the subset dropped)."""
        position = np.full(self.n, -1, dtype=np.int64)
        position[rows] = np.arange(len(rows))
        parent = self.parent[rows]
        parent = np.where(parent >= 0, position[np.maximum(parent, 0)], -1)
        return TraceData(
            times=self.times[rows],
            parent=parent,
            think=self.think[rows],
            cols={k: np.asarray(v)[rows] for k, v in self.cols.items()},
            output_tokens=self.output_tokens[rows],
            train=self.train[rows],
            sessions=self.sessions,
        )


def load_trace(path: Path, fmt: str, train_fraction: float = 0.4) -> TraceData:
    """Read a trace (see the module doc for the formats and the training split).

    Raises:
        ValueError: An unknown format.
    """
    if fmt == "minisweagent":
        return _load_sessions(path)
    if fmt not in FORMATS:
        raise ValueError(f"unknown trace format {fmt!r}; simulate reads {', '.join(FORMATS)}")
    import pyarrow as pa

    from feature_store.importers import get_importer

    tables = list(get_importer(fmt).read(path))
    table = pa.concat_tables(tables)
    good = np.asarray(table.column("_error").is_null().to_numpy(zero_copy_only=False))
    table = table.filter(pa.array(good))
    stamps = table.column("submitted_at").cast(pa.int64()).to_numpy().astype(np.float64) / 1e6
    order = np.argsort(stamps, kind="stable")
    stamps = stamps[order] - stamps[order][0]
    n = len(stamps)

    def numeric(name: str) -> F64:
        if name not in table.column_names:
            return np.zeros(n)
        col = table.column(name).to_numpy(zero_copy_only=False).astype(np.float64)
        out: F64 = np.nan_to_num(col)[order]
        return out

    cols: dict[str, Any] = {
        "request_id": np.asarray(table.column("request_id").to_pylist(), dtype=object)[order],
        "served_model": np.full(n, fmt, dtype=object),
        "input_tokens": numeric("input_tokens"),
        "cached_tokens": numeric("cached_tokens"),
    }
    if "workflow_id" in table.column_names and table.column("workflow_id").null_count < n:
        workflows = table.column("workflow_id").to_pylist()
        cols["workflow_id"] = np.asarray(workflows, dtype=object)[order]
        cols["step"] = numeric("step")
        cols["wf_prev_output_tokens"] = _previous_in_workflow(
            cols["workflow_id"], cols["step"], stamps, numeric("output_tokens")
        )
    return TraceData(
        times=stamps,
        parent=np.full(n, -1, dtype=np.int64),
        think=np.zeros(n),
        cols=cols,
        output_tokens=numeric("output_tokens"),
        train=np.arange(n) < int(train_fraction * n),
        sessions=False,
    )


def _previous_in_workflow(workflow: Any, step: F64, stamps: F64, values: F64) -> F64:
    """``values`` of the previous request of the same workflow (by step, then time), else NaN.

    The feature store's ``wf_prev_*`` lag, computed on arrays.
    """
    order = np.lexsort((stamps, step, workflow.astype(str)))
    out = np.full(len(values), np.nan)
    same = workflow[order][1:] == workflow[order][:-1]
    out[order[1:][same]] = values[order[:-1][same]]
    return out


def _load_sessions(path: Path) -> TraceData:
    import pandas as pd

    from training import group_keys, split_by_group

    calls = pd.read_csv(path)
    calls = calls.sort_values(["run", "instance_id", "step"], kind="stable").reset_index(drop=True)
    task = calls["run"] + "/" + calls["instance_id"]
    first = task.ne(task.shift())
    n = len(calls)
    parent = np.where(first, -1, np.arange(n) - 1).astype(np.int64)
    tool = (calls["tool_end_ts"] - calls["call_end_ts"]).to_numpy(np.float64)
    think = np.zeros(n)
    think[~first.to_numpy()] = np.clip(np.nan_to_num(tool[:-1][~first.to_numpy()[1:]]), 0, None)
    think = np.minimum(think, MAX_THINK_S)
    start = calls["call_start_ts"].fillna(calls["call_end_ts"]).to_numpy(np.float64)
    prev_out = calls["completion_tokens"].shift().where(~first).to_numpy(np.float64)
    prev_lat = calls["latency_s"].shift().where(~first).to_numpy(np.float64)
    cols: dict[str, Any] = {
        "request_id": (task + "/" + calls["step"].astype(str)).to_numpy(dtype=object),
        "served_model": calls["model"].to_numpy(dtype=object),
        "workflow_id": task.to_numpy(dtype=object),
        "step": calls["step"].to_numpy(np.float64),
        "input_tokens": calls["prompt_tokens"].to_numpy(np.float64),
        "cached_tokens": calls["cached_tokens"].to_numpy(np.float64),
        "prompt": calls["prev_text"].fillna("").to_numpy(dtype=object),
        "wf_prev_output_tokens": prev_out,
        "wf_prev_latency_s": prev_lat,
    }
    # Own salt: the training job splits the training tasks again with its default salt,
    # and needs tasks in every one of its folds.
    split = split_by_group(group_keys(cols), salt=SESSION_SALT)
    train = np.ones(n, dtype=bool)
    train[split.test] = False
    return TraceData(
        times=start - np.nanmin(start),
        parent=parent,
        think=think,
        cols=cols,
        output_tokens=calls["completion_tokens"].to_numpy(np.float64),
        train=train,
        sessions=True,
    )


def service_times(
    trace: TraceData,
    devices: Sequence[str],
    slots: int = 1,
    device_data: Path = DEVICE_DATA,
    seed: int = 0,
) -> F64:
    """True service time of every request on every device type, ``(n, D)`` seconds.

    See the module doc for the composition. The draws are seeded per device, so a
    request's service time does not depend on which other devices are simulated.

    Raises:
        core.InputError: A device without measurements, or ``slots`` not a measured
            batch size (1, 2, 4, ..., 64).
    """
    from core import InputError
    from feature_store.importers import DeviceProfile

    uncached = np.maximum(trace.cols["input_tokens"] - trace.cols["cached_tokens"], 1.0)
    out = np.empty((trace.n, len(devices)))
    for j, device in enumerate(devices):
        hardware = HARDWARE.get(device)
        if hardware is None:
            raise InputError(f"no measurements for device {device!r}; known: {', '.join(HARDWARE)}")
        tp = TENSOR_PARALLEL.get(device)
        solo = DeviceProfile.load(
            device_data, model=PROFILE_MODEL, hardware=hardware, tensor_parallel=tp
        )
        factor = 1.0
        if slots > 1:
            batched = DeviceProfile.load(
                device_data,
                model=PROFILE_MODEL,
                hardware=hardware,
                batch_size=slots,
                tensor_parallel=tp,
            )
            same = np.isin(solo.prompt_size, batched.prompt_size) & np.isin(
                solo.token_size, batched.token_size
            )
            factor = float(np.median(batched.per_token_s) / np.median(solo.per_token_s[same]))
        digest = hashlib.blake2b(device.encode(), digest_size=4).digest()
        rng = np.random.default_rng((seed, int.from_bytes(digest, "big")))
        composed = solo.compose(uncached, trace.output_tokens, rng)
        prefill = np.nan_to_num(composed.ttft_s)
        out[:, j] = prefill + (composed.latency_s - prefill) * factor
    return np.maximum(out, 1e-3)


def _training_frame(trace: TraceData, work: F64, devices: Sequence[str], rows: I64) -> Any:
    """One training row per (request, device type): target = service time there."""
    import pyarrow as pa

    columns: dict[str, list[Any]] = {}
    for j, device in enumerate(devices):
        part = {k: np.asarray(v)[rows] for k, v in trace.cols.items()}
        part["request_id"] = np.array([f"{r}@{device}" for r in part["request_id"]], dtype=object)
        part["device"] = np.full(len(rows), device, dtype=object)
        part["latency_s"] = work[rows, j]
        for k, v in part.items():
            columns.setdefault(k, []).extend(
                [None if isinstance(x, float) and np.isnan(x) else x for x in v.tolist()]
            )
    return pa.table(columns)


def train_forecaster(
    trace: TraceData,
    work: F64,
    devices: Sequence[str],
    out_dir: Path,
    *,
    seed: int = 0,
    trials: int = 2,
    max_epochs: int = 20,
    on_trial: Callable[[Any], None] | None = None,
) -> Predictor:
    """Train (or load from ``out_dir``) the service-time predictor on the training rows.

    Uses :func:`training.train_predictor` (Optuna search over ``trials`` trials,
    conformal calibration); text features (hashed n-grams) are searched only when
    the trace has prompts. The bundle is cached in ``out_dir/predictor``.
    """
    bundle = out_dir / "predictor"
    if (bundle / "spec.json").exists():
        return Predictor.load(bundle)
    from core.predictor import TextSpec
    from training import SearchSpace, TrainConfig, TrainRequest, train_predictor
    from training.text import TextFeatures

    def provide(spec: TextSpec, prompts: Sequence[str | None], keys: Any) -> Any:
        return TextFeatures(spec).transform(prompts), None, None

    has_text = "prompt" in trace.cols
    variants = (
        (TextSpec(kind="hashed_ngrams", buckets=1024, ngram_max=2),)
        if has_text
        else (TextSpec(kind="none"),)
    )
    request = TrainRequest(
        served_model="simulate",
        trials=trials,
        timeout_s=600.0,
        seed=seed,
        base=TrainConfig(batch_size=512, max_epochs=max_epochs, patience=4),
        space=SearchSpace(text_variants=variants, widths=(64, 128), depth=(2, 2)),
        prompt_classes=0,
        max_cost_us=None,
        baselines=(),
    )
    frame = _training_frame(trace, work, devices, np.flatnonzero(trace.train))
    outcome = train_predictor(frame, request, provide, out_dir / "plots", on_trial=on_trial)
    outcome.predictor.save(bundle)
    return outcome.predictor


def task_folds(trace: TraceData, folds: int) -> I64:
    """Fold of every request, ``0 .. folds-1``, by a stable hash of its task.

    The task is :func:`training.group_keys`' group (for the agentic calls the SWE-bench
    instance, across runs), so one task never sits in two folds.
    """
    from training import group_keys

    return np.array(
        [
            int.from_bytes(hashlib.blake2b(f"{SESSION_SALT}:{k}".encode(), digest_size=4).digest())
            % folds
            for k in group_keys(trace.cols)
        ],
        dtype=np.int64,
    )


def crossfit_forecasts(
    trace: TraceData,
    work: F64,
    devices: Sequence[str],
    out_dir: Path,
    *,
    folds: int = 3,
    seed: int = 0,
    trials: int = 2,
    max_epochs: int = 20,
) -> tuple[TraceData, F64, tuple[float, ...]]:
    """Out-of-fold forecasts for EVERY request: replay the whole trace without leakage.

    Requests are split into ``folds`` folds by a stable hash of their task
    (:func:`training.group_keys`: the same task never sits in two folds); for each fold
    a predictor is trained (:func:`train_forecaster`, cached in ``out_dir/fold<k>``) on
    the other folds and forecasts that fold only. Used for the agentic sessions, whose
    held-out fold alone is too few concurrent sessions to offer a steady load.

    Returns:
        ``(trace with no training rows, quantiles (n, D, K), levels)``.
    """
    fold = task_folds(trace, folds)
    quantiles: F64 | None = None
    levels: tuple[float, ...] = ()
    for k in range(folds):
        held = fold == k
        part = replace(trace, train=~held)
        predictor = train_forecaster(
            part,
            work,
            devices,
            out_dir / f"fold{k}",
            seed=seed,
            trials=trials,
            max_epochs=max_epochs,
        )
        table = forecast_table(predictor, part.subset(np.flatnonzero(held)), devices)
        if quantiles is None:
            levels = tuple(predictor.spec.levels)
            quantiles = np.empty((trace.n, len(devices), len(levels)))
        elif tuple(predictor.spec.levels) != levels:
            raise ValueError("fold predictors disagree on their quantile levels")
        quantiles[held] = table
    assert quantiles is not None
    return replace(trace, train=np.zeros(trace.n, dtype=bool)), quantiles, levels


def forecast_table(predictor: Predictor, trace: TraceData, devices: Sequence[str]) -> F64:
    """Service-time quantiles of every request on every device, ``(n, D, K)`` seconds."""
    out = np.empty((trace.n, len(devices), len(predictor.spec.levels)))
    for j, device in enumerate(devices):
        cols = dict(trace.cols)
        cols["device"] = np.full(trace.n, device, dtype=object)
        out[:, j, :] = np.maximum(predictor.predict(cols, trace.n), 0.0)
    return out


def placeholder_forecasts(work: F64) -> tuple[F64, tuple[float, ...]]:
    """Forecasts for runs whose policies read none: each device's unconditional quantiles.

    Returns:
        ``(quantiles (n, D, K), levels)``; every request gets the same row per device.
    """
    from core.predictor import DEFAULT_LEVELS

    marginal = np.quantile(work, DEFAULT_LEVELS, axis=0).T  # (D, K)
    return np.broadcast_to(marginal, (len(work), *marginal.shape)), DEFAULT_LEVELS


@dataclass
class Scenario:
    """A simulated window ready to replay under any policy.

    Attributes:
        workload: Arrivals (scaled to the load) and true service times.
        quantiles: Forecast quantiles ``(n, D, K)``.
        levels: Their levels.
        config: Cluster and behaviour.
        capacity_rps: Requests per second the cluster serves at full utilisation.
        slo_s: Latency objective, seconds.
        load: Offered load as a fraction of capacity.
    """

    workload: Workload
    quantiles: F64
    levels: tuple[float, ...]
    config: SimConfig
    capacity_rps: float
    slo_s: float
    load: float

    def book(self, seed: int, samples: int = 256) -> ForecastBook:
        """A fresh forecast book (same seed -> same random percentiles)."""
        table = self.quantiles
        return ForecastBook(self.levels, lambda ids: table[ids], samples=samples, seed=seed)


def cache_dir(
    home: Path, trace: Path, fmt: str, devices: Sequence[str], slots: int, seed: int
) -> Path:
    """Where the predictor for this trace, device set, slots and seed is cached."""
    key = json.dumps([str(trace.resolve()), fmt, sorted(devices), slots, seed, 2])
    return home / "simulate" / hashlib.blake2b(key.encode(), digest_size=8).hexdigest()


def build_scenario(
    trace: TraceData,
    work: F64,
    quantiles: F64,
    levels: Sequence[float],
    config: SimConfig,
    devices: Sequence[str],
    load: float,
    slo_s: float | None = None,
    limit: int | None = None,
) -> Scenario:
    """Scale the simulated rows' arrivals to ``load`` x capacity and assemble a scenario.

    Capacity (requests/s) = sum over replicas of slots / mean service time of the
    simulated requests on the replica's device type. Independent requests keep their
    trace order and relative gaps, compressed or stretched uniformly. Sessions start
    (their first call) evenly spaced, in trace order, at the rate that offers the
    load given their mean number of calls; later calls follow their session.
    ``slo_s`` defaults to 5 x the median service time on the fastest device type.
    """
    rows = np.flatnonzero(~trace.train)
    if limit is not None:
        rows = rows[:limit] if not trace.sessions else _whole_sessions(trace, rows, limit)
    sim = trace.subset(rows)
    w, q = work[rows], quantiles[rows]
    index = {d: i for i, d in enumerate(devices)}
    mean_work = w.mean(axis=0)
    capacity = sum(
        count * config.slots / float(mean_work[index[name]]) for name, count in config.cluster
    )
    rate = load * capacity
    if sim.sessions:
        roots = np.flatnonzero(sim.parent < 0)
        order = roots[np.argsort(sim.times[roots], kind="stable")]
        calls_per_session = sim.n / len(roots)
        arrival = np.full(sim.n, np.nan)
        arrival[order] = np.arange(len(order)) * calls_per_session / rate
    else:
        span = float(sim.times[-1] - sim.times[0]) or 1.0
        native = (sim.n - 1) / span
        arrival = (sim.times - sim.times[0]) * native / rate
    workload = Workload(
        arrival=np.nan_to_num(arrival, nan=0.0),
        parent=sim.parent,
        think=sim.think,
        work=w,
        devices=tuple(devices),
    )
    slo = slo_s if slo_s is not None else 5.0 * float(np.median(w.min(axis=1)))
    return Scenario(workload, q, tuple(levels), config, capacity, slo, load)


def _whole_sessions(trace: TraceData, rows: I64, limit: int) -> I64:
    """The first sessions among ``rows`` holding at most ``limit`` calls (at least one)."""
    roots = rows[trace.parent[rows] < 0]
    keep: list[int] = []
    owner = np.full(trace.n, -1, dtype=np.int64)
    for r in rows:
        owner[r] = r if trace.parent[r] < 0 else owner[trace.parent[r]]
    for root in roots:
        members = rows[owner[rows] == root]
        if keep and len(keep) + len(members) > limit:
            break
        keep.extend(int(m) for m in members)
    return np.asarray(sorted(keep), dtype=np.int64)


def router_options(router: str, quantile: float, percentiles: str) -> dict[str, Any]:
    """Constructor options of ``router``: ``tail_aware`` takes its level and draw mode."""
    return {"quantile": quantile, "percentiles": percentiles} if router == "tail_aware" else {}


def run_policy(
    scenario: Scenario,
    router: str,
    scaler: str = "none",
    *,
    seed: int = 0,
    quantile: float = 0.95,
    samples: int = 256,
    scaler_options: dict[str, Any] | None = None,
    progress: Callable[[int], None] | None = None,
    percentiles: str = "shared",
) -> SimResult:
    """Replay the scenario under one router and scaler (same seed -> same randomness).

    ``quantile`` and ``percentiles`` configure ``tail_aware`` (ignored by the others).
    """
    scaling = {"slo_s": scenario.slo_s, **(scaler_options or {})}
    return simulate(
        scenario.workload,
        replace(scenario.config, seed=seed),
        make_router(router, **router_options(router, quantile, percentiles)),
        make_scaler(scaler, **scaling),
        scenario.book(seed, samples),
        progress,
    )


def latency_plot(results: dict[str, SimResult], path: Path, window_s: float | None = None) -> Path:
    """Rolling P95 latency over arrival time, one line per policy; writes a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4))
    for name, result in results.items():
        span = float(np.nanmax(result.arrival) - np.nanmin(result.arrival)) or 1.0
        mids, p95 = result.rolling(0.95, window_s or span / 40)
        ax.plot(mids / 60.0, p95, label=name, linewidth=1.2)
    ax.set_xlabel("arrival time (min)")
    ax.set_ylabel("P95 latency (s), rolling window")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


__all__ = [
    "DEVICE_DATA",
    "HARDWARE",
    "CapacityEvent",
    "Scenario",
    "TraceData",
    "build_scenario",
    "cache_dir",
    "crossfit_forecasts",
    "forecast_table",
    "latency_plot",
    "load_trace",
    "placeholder_forecasts",
    "run_policy",
    "service_times",
    "task_folds",
    "train_forecaster",
]
