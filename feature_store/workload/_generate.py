"""generate_workload: a seeded, vectorized synthetic workload of completion records.

The steps, each vectorized over all records with numpy:

1. workflows: class (by ``share``), calls per workflow, replica (model by
   ``model_mix``, then a device that holds it by ``device_mix``), arrival time;
2. calls: prompt text, attached context, output length, prompt length and cacheable
   prefix (see ``_text`` and ``_lengths``);
3. timing: calls are submitted step by step (one numpy pass per step index), each
   meeting the load of its replica at its submission time (see ``_sessions``,
   ``_load`` and ``_latency``);
4. the table: CompletionRecord columns, sorted by ``submitted_at``.

Each concern draws from its own random stream (spawned from the seed), so changing
one part of the model leaves the others' draws unchanged.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from core.devices import device_spec
from feature_store.workload._config import WorkloadConfig
from feature_store.workload._latency import SpeedTable
from feature_store.workload._lengths import (
    ClassTable,
    context_tokens,
    output_tokens,
    prompt_tokens,
    steps_per_workflow,
)
from feature_store.workload._load import LoadCurve
from feature_store.workload._schema import WORKLOAD_SCHEMA
from feature_store.workload._sessions import CallInputs, CallTimes, arrival_times, run_calls
from feature_store.workload._speed import DeviceSpeed, device_speed
from feature_store.workload._text import draw_text, render, text_factor, token_counts

IntArray = npt.NDArray[np.int64]
_STREAMS = ("workflows", "text", "lengths", "load", "calls")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def replicas(config: WorkloadConfig) -> tuple[list[DeviceSpeed], npt.NDArray[np.float64]]:
    """Every (device, model) pair that can serve, with its share of workflows.

    Args:
        config: The workload configuration.

    Returns:
        The replicas' speeds and their probabilities (summing to 1).

    Raises:
        ValueError: A model with a positive share fits on no device of the mix.
    """
    speeds: list[DeviceSpeed] = []
    probs: list[float] = []
    model_total = sum(config.model_mix.get(m.name, 0.0) for m in config.served_models)
    for model in config.served_models:
        share = config.model_mix.get(model.name, 0.0) / model_total
        fitting: list[tuple[DeviceSpeed, float]] = []
        for name, weight in config.device_mix.items():
            if share <= 0 or weight <= 0:
                continue
            try:
                fitting.append((device_speed(device_spec(name), model, config.speed), weight))
            except ValueError:
                continue  # the model does not fit on this device
        if share > 0 and not fitting:
            raise ValueError(f"{model.name} fits on no device of device_mix")
        total = sum(w for _, w in fitting)
        speeds += [s for s, _ in fitting]
        probs += [share * w / total for _, w in fitting]
    return speeds, np.array(probs) / sum(probs)


def generate_workload(config: WorkloadConfig | None = None) -> pa.Table:
    """Generate a synthetic workload of completion records.

    Args:
        config: What to generate; defaults to ``WorkloadConfig()`` (10,000 records).

    Returns:
        A table with exactly the :class:`core.CompletionRecord` columns
        (:data:`~feature_store.workload.WORKLOAD_SCHEMA`), sorted by ``submitted_at``.
        The same config always gives the same table.

    >>> t = generate_workload(WorkloadConfig(n_records=50, seed=3))
    >>> t.num_rows, t.column_names[:3]
    (50, ['request_id', 'served_model', 'device'])
    >>> t.column("request_id")[0].as_py()
    'wl-s3-00000000'
    """
    cfg = config or WorkloadConfig()
    seeds = np.random.SeedSequence(cfg.seed).spawn(len(_STREAMS))
    rng = {name: np.random.default_rng(s) for name, s in zip(_STREAMS, seeds, strict=True)}
    classes, table = cfg.prompt_classes, ClassTable.of(cfg.prompt_classes)
    speeds, replica_p = replicas(cfg)
    n = cfg.n_records
    wf_cls, steps, wf_rep, starts, span_s = _workflows(cfg, table, replica_p, rng["workflows"])

    # calls, grouped by workflow in step order
    first = np.cumsum(steps) - steps
    workflow = np.repeat(np.arange(len(steps)), steps)
    step = np.arange(n) - first[workflow]
    cls, rep = wf_cls[workflow], wf_rep[workflow]
    choices = draw_text(
        classes, cls, len(cfg.modifiers), cfg.modifier_probability, cfg.max_items, rng["text"]
    )
    context = context_tokens(table, cls, rng["lengths"])
    words = np.rint(context * cfg.words_per_token).astype(np.int64)
    prompts = render(classes, choices, cfg.modifiers, words, step)
    factor = text_factor(classes, choices, cfg.modifiers, table.items_exponent[cls])
    output = output_tokens(table, cls, factor, context, cfg.max_output_tokens, rng["lengths"])
    window = np.array([m.context_window_tokens for m in cfg.served_models])
    model_of = {m.name: i for i, m in enumerate(cfg.served_models)}
    rep_window = window[[model_of[s.model] for s in speeds]]
    text = token_counts(prompts, cfg.chars_per_token)
    inputs, prefix = prompt_tokens(
        table, cls, workflow, first, text, context, output, rep_window[rep]
    )
    gap = table.gap_median_s[cls] * np.exp(table.gap_sigma[cls] * rng["lengths"].standard_normal(n))

    # timing
    curve = LoadCurve(cfg.load, cfg.start, span_s + 86_400.0, len(speeds), rng["load"])
    times = run_calls(
        starts,
        steps,
        CallInputs(rep, inputs, prefix, output, gap),
        SpeedTable.of(speeds),
        curve,
        cfg.noise,
        rng["calls"],
    )

    # the table
    columns = {
        "prompt": pa.array(prompts, pa.string()),
        "prompt_class": _names([c.name for c in classes], cls),
        "served_model": _names([s.model for s in speeds], rep),
        "device": _names([s.device for s in speeds], rep),
        "workflow_id": _ids(f"wf-s{cfg.seed}-", workflow, 7),
        "input_tokens": pa.array(inputs),
        "cached_tokens": pa.array(times.cached_tokens),
        "output_tokens": pa.array(output),
        "step": pa.array(step),
    }
    return _sorted_table(columns, times, cfg)


def _workflows(
    cfg: WorkloadConfig,
    table: ClassTable,
    replica_p: npt.NDArray[np.float64],
    rng: np.random.Generator,
) -> tuple[IntArray, IntArray, IntArray, npt.NDArray[np.float64], float]:
    """Workflows of ``cfg.n_records`` calls: (class, steps, replica, start, span in s).

    Classes are drawn by share, each workflow's step count by its class; the last
    workflow is cut so the steps add up to exactly ``n_records``.
    """
    n = cfg.n_records
    wf_cls = rng.choice(len(table.share), size=n, p=table.share / table.share.sum())
    steps = steps_per_workflow(table, wf_cls, rng)
    total = np.cumsum(steps)
    n_wf = int(np.searchsorted(total, n)) + 1
    wf_cls, steps = wf_cls[:n_wf], steps[:n_wf].copy()
    steps[-1] -= total[n_wf - 1] - n
    wf_rep = rng.choice(len(replica_p), size=n_wf, p=replica_p)
    span_s = n / cfg.arrival_rate_per_s
    starts = arrival_times(n_wf, span_s, cfg.start, cfg.load, rng)
    return wf_cls, steps, wf_rep, starts, span_s


def _names(names: list[str], idx: IntArray) -> pa.Array:
    return pa.array(names, pa.string()).take(pa.array(idx))


def _ids(prefix: str, idx: IntArray, width: int) -> pa.Array:
    digits = pc.utf8_lpad(pa.array(idx).cast(pa.string()), width=width, padding="0")
    return pc.binary_join_element_wise(prefix, digits, "")


def _sorted_table(columns: dict[str, pa.Array], times: CallTimes, cfg: WorkloadConfig) -> pa.Table:
    start_us = (cfg.start - _EPOCH) // np.timedelta64(1, "us").item()
    submitted_us = start_us + np.rint(times.submitted_s * 1e6).astype(np.int64)
    order = np.argsort(submitted_us, kind="stable")
    take = pa.array(order)
    data = {name: col.take(take) for name, col in columns.items()}
    data |= {
        "request_id": _ids(f"wl-s{cfg.seed}-", np.arange(len(order)), 8),
        "submitted_at": pa.array(submitted_us[order], pa.timestamp("us", tz="UTC")),
        "latency_s": pa.array(times.latency_s[order]),
        "ttft_s": pa.array(times.ttft_s[order]),
        "num_running": pa.array(times.num_running[order]),
        "num_waiting": pa.array(times.num_waiting[order]),
        "kv_cache_util": pa.array(times.kv_cache_util[order]),
    }
    # Fields the generator does not model (tokens in flight) are null: not reported.
    data |= {f.name: pa.nulls(len(order), f.type) for f in WORKLOAD_SCHEMA if f.name not in data}
    return pa.table([data[f.name] for f in WORKLOAD_SCHEMA], schema=WORKLOAD_SCHEMA)
