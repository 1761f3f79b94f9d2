"""Serving latency and throughput: the real `tailcast serve` process under load.

Measures, in one run on one machine:

* **single** — open-loop `POST /v1/forecasts` with one request (prompt text included)
  sent on a fixed schedule at :data:`SINGLE_RPS` requests/s for :data:`DURATION_S` over
  :data:`CONNECTIONS` keep-alive connections; latency of each call (send to full
  response, and from its scheduled send time) and the rate actually achieved;
* **swap** — the same load while a new champion is promoted and loaded
  (``POST /v1/models/reload`` at :data:`SWAP_AT_S`): errors, p99 against the single
  phase's, and answers per model version;
* **bulk** — :data:`BULK_ITEMS` requests per call, :data:`BULK_CONNECTIONS` closed-loop
  connections for :data:`DURATION_S`: forecasts/s and latency per call.

Set-up: a demo workload (seed 0) is ingested into a fresh home directory, a real
champion is trained for ``llama-3.1-8b`` (2 search trials) and a second version is
registered for the swap; the service is started as its own process with ``tailcast
serve`` on a free loopback port. The load generator
(:mod:`benchmarks._serving_loadgen`) is a separate process writing pre-encoded
HTTP/1.1 requests to raw asyncio streams, so it costs little CPU; both processes'
CPU per call is reported. They share the machine's cores, which the figures include.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

SERVED_MODEL = "llama-3.1-8b"
RECORDS = 20_000
SINGLE_RPS = 500
DURATION_S = 10.0
CONNECTIONS = 16
SWAP_AT_S = 3.0
BULK_ITEMS = 64
BULK_CONNECTIONS = 4
TOKEN = "bench-token"
READY_TIMEOUT_S = 120.0
PROMPTS = 2_000


def _quantile(values: list[float], q: float) -> float:
    """Nearest-rank quantile (``nan`` when empty)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 1))))
    return ordered[rank - 1]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _prepare(home: Path, table: Any = None) -> list[dict[str, Any]]:
    """Ingest the demo workload, train a champion; return forecast items to send.

    Args:
        home: The service's home (created).
        table: The records to ingest and train on (default: the demo workload of
            :data:`RECORDS` records, seed 0).
    """
    from core import Settings
    from feature_store import DuckDBStore
    from feature_store.importers import get_importer
    from feature_store.workload import WorkloadConfig, generate_workload, write_workload
    from pipelines.cli._train import _quiet_training_stack

    settings = Settings(home=home)
    home.mkdir(parents=True, exist_ok=True)
    if table is None:
        table = generate_workload(WorkloadConfig(seed=0, n_records=RECORDS))
    demo = home / "workload.parquet"
    write_workload(table, demo)
    _quiet_training_stack()
    from pipelines.train import train_served_model

    with DuckDBStore(settings.resolved_store_path) as store:
        store.ingest_batches(get_importer("parquet").read(demo), judge=False)
        train_served_model(settings, store, SERVED_MODEL, trials=2, timeout_s=60)
    _register_copy(settings)
    rows = [
        r
        for r in table.select(["served_model", "device", "prompt", "input_tokens"]).to_pylist()
        if r["served_model"] == SERVED_MODEL
    ][:PROMPTS]
    return [
        {k: v for k, v in r.items() if v is not None}
        | {"served_model": SERVED_MODEL, "device": r["device"]}
        for r in rows
    ]


def _register_copy(settings: Any) -> None:
    """Register the champion's bundle again as a new, not yet promoted version (the swap)."""
    import pandas as pd

    from registry import MLflowRegistry

    registry = MLflowRegistry(settings.mlflow_tracking_uri or "")
    predictor, _ = registry.load(SERVED_MODEL)
    registry.log_training(
        SERVED_MODEL,
        predictor,
        params={"copy_of": "champion"},
        metrics={"mean_pinball": 1.0},
        artifacts={},
        input_example=pd.DataFrame(
            {"served_model": [SERVED_MODEL], "device": ["h100"], "input_tokens": [100]}
        ),
    )


def _promote_latest(home: Path) -> int:
    """Make the newest version the champion (the service loads it on reload)."""
    from core import Settings
    from registry import MLflowRegistry

    registry = MLflowRegistry(Settings(home=home).mlflow_tracking_uri or "")
    latest = max(v.version for v in registry.list_versions(SERVED_MODEL))
    registry.promote(SERVED_MODEL, latest)
    return latest


def start_service(
    home: Path, log: Path, poll_interval_s: float, extra_env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[bytes], int]:
    """``tailcast serve`` on ``home`` (token :data:`TOKEN`) on a free port: (process, port).

    The caller's ``TAILCAST_*`` variables are not inherited; ``extra_env`` adds settings.
    The process leads its own session (see :func:`_stop`); wait with :func:`_wait_ready`.
    """
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAILCAST_")}
    env |= {"TAILCAST_HOME": str(home), "TAILCAST_API_TOKEN": TOKEN, **(extra_env or {})}
    command = [str(Path(sys.executable).parent / "tailcast"), "serve", "--port", str(port)]
    with log.open("wb") as fh:
        proc = subprocess.Popen(
            [*command, "--poll-interval", str(poll_interval_s), "--no-llmd-retrain"],
            stdout=fh,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    return proc, port


def _wait_ready(base: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"tailcast serve exited ({proc.returncode}); see {log}")
        try:
            with urllib.request.urlopen(f"{base}/readyz", timeout=2) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    raise RuntimeError(
        f"tailcast serve not ready after {READY_TIMEOUT_S:.0f} s:\n{log.read_text()}"
    )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)


def _measure(home: Path, items: list[dict[str, Any]]) -> dict[str, Any]:
    """Start the service, promote the swap version, drive the load generator, stop."""
    log = home / "serve.log"
    proc, port = start_service(home, log, 3600)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(base, proc, log)
        swap_to = _promote_latest(home)  # loaded only when the swap phase calls reload
        cfg = {
            "host": "127.0.0.1",
            "port": port,
            "items": items,
            "phases": ["single", "swap", "bulk"],
            "rps": SINGLE_RPS,
            "duration_s": DURATION_S,
            "connections": CONNECTIONS,
            "swap_at_s": SWAP_AT_S,
            "token": TOKEN,
            "bulk_items": BULK_ITEMS,
            "bulk_connections": BULK_CONNECTIONS,
            "server_pid": proc.pid,
        }
        out = subprocess.run(
            [sys.executable, "-m", "benchmarks._serving_loadgen"],
            input=json.dumps(cfg).encode(),
            capture_output=True,
            timeout=6 * DURATION_S + 180,
            check=False,
        )
        if out.returncode != 0:
            raise RuntimeError(f"load generator failed:\n{out.stderr.decode()[-4000:]}")
        result: dict[str, Any] = json.loads(out.stdout)
        result["swap_to"] = swap_to
        return result
    finally:
        _stop(proc)


def _cpu_line(label: str, phase: dict[str, Any], calls: int, forecasts: int) -> str:
    """CPU spent per call by the server and by the load generator during one phase."""
    if calls == 0:
        return f"{label}: no successful calls."
    srv = phase.get("server_cpu_s")
    server = (
        "server CPU not measured (no /proc)"
        if srv is None
        else f"server {srv * 1000 / calls:.2f} ms CPU per call "
        f"({srv * 1e6 / forecasts:.0f} us per forecast)"
    )
    client = phase["client_cpu_s"] * 1000 / calls
    return f"{label}: {server}; load generator {client:.2f} ms CPU per call."


def _open_row(label: str, phase: dict[str, Any], bar: str, verdict: str) -> str:
    lat: list[float] = phase["lat"]
    achieved = len(lat) / phase["wall_s"] if phase["wall_s"] > 0 else 0.0
    ms = 1000.0
    return (
        f"| {label} | {SINGLE_RPS} req/s | {achieved:,.0f} req/s | {len(lat):,} / "
        f"{phase['errors']:,} | {_quantile(lat, 0.5) * ms:.2f} | {_quantile(lat, 0.95) * ms:.2f} "
        f"| {_quantile(lat, 0.99) * ms:.2f} | {_quantile(phase['late'], 0.99) * ms:.2f} | "
        f"{bar} | {verdict} |\n"
    )


def run() -> str:
    """Run the benchmark; return the Markdown body for BENCHMARKS.md."""
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        items = _prepare(home)
        res = _measure(home, items)
    s, w, b = res["single"], res["swap"], res["bulk"]
    ms = 1000.0
    s_p99 = _quantile(s["lat"], 0.99) * ms
    w_p99 = _quantile(w["lat"], 0.99) * ms
    b_lat: list[float] = b["lat"]
    b_rate = b["forecasts"] / b["wall_s"] if b["wall_s"] > 0 else 0.0
    single_ok = "met" if s_p99 <= 10.0 and s["errors"] == 0 else "not met"
    swapped = str(res["swap_to"]) in w["versions"]
    swap_ok = "met" if w["errors"] == 0 and w_p99 <= 2 * s_p99 and swapped else "not met"
    bulk_ok = "met" if b_rate >= 20_000 and b["errors"] == 0 else "not met"
    side = w.get("side", {})
    versions = ", ".join(f"v{k}: {v:,}" for k, v in sorted(w["versions"].items()))
    cores = os.cpu_count() or 0
    load = os.getloadavg()[0]
    return (
        f"`tailcast serve` (uvicorn + uvloop + httptools, one worker, micro-batched "
        f"forecasts) in its own process on loopback, serving a real `{SERVED_MODEL}` "
        f"champion (demo workload seed 0, {RECORDS:,} records, 2 search trials, "
        "hashed-n-gram text features); load from a separate process writing pre-encoded "
        f"HTTP/1.1 on raw asyncio streams over {CONNECTIONS} keep-alive connections "
        f"({cores} cores shared by both; 1-minute load average {load:.1f} at the end, "
        "so other work was running unless it is near 2). Items: workload rows with prompt "
        "text, device and input_tokens; default quantiles. Latency: send to full "
        "response; *late p99*: from each call's scheduled send time (no coordinated "
        "omission).\n\n"
        "| scenario | offered | achieved | ok / errors | p50 ms | p95 ms | p99 ms | "
        "late p99 ms | bar | verdict |\n|---|---:|---:|---:|---:|---:|---:|---:|---|---|\n"
        + _open_row(
            f"single, open loop, {DURATION_S:.0f} s", s, "p99 <= 10 ms at 500 req/s", single_ok
        )
        + _open_row(
            f"champion swap under load, {DURATION_S:.0f} s",
            w,
            f"0 errors, p99 <= 2x single ({2 * s_p99:.2f} ms)",
            swap_ok,
        )
        + f"| bulk, {BULK_ITEMS}/call, {BULK_CONNECTIONS} connections, {DURATION_S:.0f} s | "
        f"closed loop | **{b_rate:,.0f} forecasts/s** ({len(b_lat) / b['wall_s']:,.1f} "
        f"calls/s) | {len(b_lat):,} / {b['errors']:,} | {_quantile(b_lat, 0.5) * ms:.1f} | "
        f"{_quantile(b_lat, 0.95) * ms:.1f} | {_quantile(b_lat, 0.99) * ms:.1f} | | "
        f">= 20,000 forecasts/s | {bulk_ok} |\n\n"
        f"Swap: `POST /v1/models/reload` sent {side.get('at_s', float('nan')):.1f} s into "
        f"the phase answered {side.get('status')} after {side.get('took_s', 0) * ms:.0f} ms "
        f"(v{res['swap_to']} promoted just before); answers by version: {versions}.\n\n"
        f"{_cpu_line('Single', s, len(s['lat']), len(s['lat']))}  \n"
        f"{_cpu_line('Swap', w, len(w['lat']), len(w['lat']))}  \n"
        f"{_cpu_line('Bulk', b, len(b_lat), b['forecasts'])}\n"
    )
