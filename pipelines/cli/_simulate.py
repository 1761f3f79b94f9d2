"""``tailcast simulate``: replay a real trace through a router and a scaler."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from core import Settings, TailcastError
from pipelines.cli import _simulate_capacity as capacity
from pipelines.cli._common import JsonOption, console, fail, print_json, progress_bar

ROUTER_NAMES = (
    "random",
    "round_robin",
    "po2",
    "least_loaded",
    "predicted_mean",
    "tail_aware",
    "oracle",
)
SCALER_NAMES = ("none", "utilization", "forecast")
PERCENTILE_MODES = ("shared", "independent")
ARRIVAL_MODELS = ("auto", "poisson", "renewal")
"""Names the CLI checks before importing the policies (numpy-free start; a test keeps them
equal to ``scheduler_hooks``' own)."""
FORECAST_POLICIES = {"predicted_mean", "tail_aware", "forecast"}


def _check(name: str, value: str, known: tuple[str, ...], what: str = "policy") -> None:
    if value not in known:
        fail(f"--{name} {value!r} is not a known {what}; choose one of: {', '.join(known)}")


def simulate(
    trace: Annotated[
        Path, typer.Option("--trace", exists=True, dir_okay=False, help="Trace file to replay.")
    ],
    cluster: Annotated[
        str, typer.Option("--cluster", help="Replicas per device type, e.g. a100:4,h100:2.")
    ],
    fmt: Annotated[
        str, typer.Option("--format", "-f", help="azure, mooncake, minisweagent or auto.")
    ] = "auto",
    router: Annotated[str, typer.Option("--router", help="Routing policy.")] = "tail_aware",
    scaler: Annotated[str, typer.Option("--scaler", help="Scaling policy.")] = "none",
    load: Annotated[
        float, typer.Option("--load", min=0.01, help="Offered load as a fraction of capacity.")
    ] = 0.8,
    seed: Annotated[int, typer.Option("--seed", help="Seed of every random choice.")] = 0,
    slots: Annotated[
        int, typer.Option("--slots", help="Requests a replica serves at once (1,2,4,...,64).")
    ] = 1,
    slo: Annotated[
        float | None,
        typer.Option("--slo", help="Latency SLO, s (default 5 x median fastest service time)."),
    ] = None,
    quantile: Annotated[
        float, typer.Option("--quantile", help="Level tail_aware minimises.")
    ] = 0.95,
    percentiles: Annotated[
        str,
        typer.Option(
            "--percentiles",
            help="tail_aware's draws: shared (one percentile per draw for every request) "
            "or independent.",
        ),
    ] = "shared",
    arrivals: Annotated[
        str,
        typer.Option(
            "--arrivals",
            help="The forecast scaler's arrival model: poisson (bursts at exponential gaps), "
            "renewal (gaps resampled from recent ones; for regular bursts) or auto "
            "(renewal while recent gaps are regular).",
        ),
    ] = "auto",
    samples: Annotated[int, typer.Option("--samples", min=16, help="Monte Carlo draws.")] = 256,
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="Simulate at most this many requests.")
    ] = None,
    train_fraction: Annotated[
        float,
        typer.Option("--train-fraction", help="Leading share of a trace that trains."),
    ] = 0.4,
    trials: Annotated[int, typer.Option("--trials", min=1, help="Optuna trials.")] = 2,
    cold_start: Annotated[float, typer.Option("--cold-start", help="Scale-up delay, s.")] = 60.0,
    max_replicas: Annotated[
        int | None, typer.Option("--max-replicas", help="Replica budget of scalers.")
    ] = None,
    plot: Annotated[
        Path | None, typer.Option("--plot", help="Latency-over-time PNG (default under home).")
    ] = None,
    scale_device: Annotated[
        str | None,
        typer.Option(
            "--scale-device", help="Device type scale-ups add (default: cluster's first)."
        ),
    ] = None,
    loss_at: Annotated[
        float | None,
        typer.Option("--loss-at", help="Simulated second capacity is lost at (default: no loss)."),
    ] = None,
    loss_fraction: Annotated[
        float,
        typer.Option(
            "--loss-fraction",
            help="In (0, 1): degrade: speed lost by the pool; slow/remove: replicas hit.",
        ),
    ] = 0.71,
    loss_kind: Annotated[
        str,
        typer.Option("--loss-kind", help="degrade, slow (hit replicas at 25% speed) or remove."),
    ] = "degrade",
    loss_devices: Annotated[
        str | None,
        typer.Option("--loss-devices", help="Device types a degrade hits, e.g. a100 (all)."),
    ] = None,
    drift_retrain: Annotated[
        bool,
        typer.Option(
            "--drift-retrain/--no-drift-retrain",
            help="Recalibrate forecasts when the drift monitor alarms.",
        ),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Replay a trace on a simulated heterogeneous cluster; print latency, SLO, cost.

    A predictor of per-request service time is trained on the part of the trace that
    is not replayed (cached under the tailcast home) when a policy needs forecasts.
    With --loss-at or --drift-retrain a drift monitor watches the completions; with a
    loss, the P90 before it and late after it are printed too.
    """
    _check("router", router, ROUTER_NAMES)
    _check("scaler", scaler, SCALER_NAMES)
    _check("percentiles", percentiles, PERCENTILE_MODES, "mode")
    _check("arrivals", arrivals, ARRIVAL_MODELS, "arrival model")
    from feature_store.importers import detect_format
    from pipelines import simulate as job
    from scheduler_hooks.sim import SimConfig, parse_cluster

    loss = capacity.LossOptions(loss_at, loss_fraction, loss_kind, loss_devices, drift_retrain)

    settings = Settings()
    started = time.perf_counter()
    try:
        kind = detect_format(trace) if fmt == "auto" else fmt
        spec = parse_cluster(cluster)
        devices = tuple(dict.fromkeys(name for name, _ in spec))
        scale_to = capacity.scale_device(scale_device, tuple(job.HARDWARE))
        forecasts = bool({router, scaler} & FORECAST_POLICIES)
        event = capacity.loss_event(loss, devices, forecasts, router, scaler)
        devices = tuple(dict.fromkeys((*devices, scale_to or devices[0])))
        data = job.load_trace(trace, kind, train_fraction)
        work = job.service_times(data, devices, slots=slots, seed=seed)
    except (TailcastError, ValueError, OSError) as exc:
        fail(str(exc))
    with progress_bar(hidden=as_json) as bar:
        if forecasts:
            task = bar.add_task("train predictor", total=trials)
            out = job.cache_dir(settings.home, trace, kind, devices, slots, seed)
            try:
                predictor = job.train_forecaster(
                    data,
                    work,
                    devices,
                    out,
                    seed=seed,
                    trials=trials,
                    on_trial=lambda _: bar.advance(task),
                )
            except (TailcastError, ValueError, RuntimeError) as exc:
                fail(f"training the predictor failed: {exc}")
            bar.update(task, completed=trials)
            quantiles, levels = job.forecast_table(predictor, data, devices), predictor.spec.levels
        else:  # policies without forecasts: a placeholder grid the book never reads
            quantiles, levels = job.placeholder_forecasts(work)
        config = SimConfig(
            cluster=spec, slots=slots, cold_start_s=cold_start, seed=seed, scale_device=scale_to
        )
        scenario = job.build_scenario(
            data, work, quantiles, levels, config, devices, load, slo, limit
        )
        sim_task = bar.add_task(f"simulate {router}", total=scenario.workload.n)
        scaling: dict[str, Any] = {
            "min_replicas": 1,
            "max_replicas": max_replicas or 4 * sum(c for _, c in spec),
            "horizon_s": cold_start,  # the forecast scaler looks ahead over the cold start
            "arrival_model": arrivals,
        }
        extra: dict[str, Any] = {}
        try:
            if loss.active:
                result, extra = capacity.run(
                    scenario,
                    event,
                    loss.retrain,
                    router=router,
                    scaler=scaler,
                    scaler_options=scaling,
                    seed=seed,
                    quantile=quantile,
                    percentiles=percentiles,
                    samples=samples,
                    progress=lambda done: bar.update(sim_task, completed=done),
                )
            else:
                result = job.run_policy(
                    scenario,
                    router,
                    scaler,
                    seed=seed,
                    quantile=quantile,
                    percentiles=percentiles,
                    samples=samples,
                    scaler_options=scaling,
                    progress=lambda done: bar.update(sim_task, completed=done),
                )
        except ValueError as exc:
            fail(str(exc))
        bar.update(sim_task, completed=scenario.workload.n)
    summary = result.summary(scenario.slo_s)
    png = plot or settings.home / "simulate" / f"{trace.stem}-{router}-{scaler}.png"
    job.latency_plot({f"{router}/{scaler}": result}, png)
    document = {
        **{k: round(v, 4) for k, v in summary.items()},
        "router": router,
        "scaler": scaler,
        "load": load,
        "capacity_rps": round(scenario.capacity_rps, 4),
        "cluster": cluster,
        "format": kind,
        "plot": str(png),
        **extra,
        "seconds": round(time.perf_counter() - started, 1),
    }
    if as_json:
        print_json(document)
        return
    table = Table(title=f"{trace.name}: {router} / {scaler}, load {load:g}, {cluster}")
    for col in ("P50 s", "P95 s", "P99 s", "SLO s", "SLO attainment", "replica-seconds"):
        table.add_column(col, justify="right")
    table.add_row(
        f"{summary['p50']:.2f}",
        f"{summary['p95']:.2f}",
        f"{summary['p99']:.2f}",
        f"{summary['slo_s']:.1f}",
        f"{summary['slo_attainment']:.1%}",
        f"{summary['replica_seconds']:,.0f}",
    )
    console.print(table)
    if extra:
        capacity.print_table(extra)
    console.print(f"{int(summary['requests']):,} requests; latency plot: {png}")
