"""Serving latency and throughput: the real `tailcast serve` process under load.

Measures, in one run on one machine:

* **single** — open-loop `POST /v1/forecasts` with one request (prompt text included)
  sent on a fixed schedule at :data:`SINGLE_RPS` requests/s for :data:`DURATION_S`;
  latency of each call (client send to full response) and the rate actually achieved;
* **bulk** — :data:`BULK_ITEMS` requests per call, :data:`BULK_CONNECTIONS` closed-loop
  connections for :data:`DURATION_S`: forecasts/s and latency per call.

Set-up: a demo workload (seed 0) is ingested into a fresh home directory, a real
champion is trained for ``llama-3.1-8b`` (2 search trials), and the service is started
as its own process with ``tailcast serve`` on a free loopback port. The load generator
is a separate Python process (asyncio + httpx), so client and server do not share an
interpreter; they do share the machine's cores, which the figures include.
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
BULK_ITEMS = 64
BULK_CONNECTIONS = 4
READY_TIMEOUT_S = 120.0
PROMPTS = 2_000

#: Runs in its own interpreter; reads its config as JSON on stdin, writes JSON results.
_LOADGEN = r"""
import asyncio, json, os, sys, time
import httpx

cfg = json.load(sys.stdin)
url = cfg["base"] + "/v1/forecasts"
items = cfg["items"]
TICK = os.sysconf("SC_CLK_TCK")


def cpu():
    # (server process CPU s or None, this process CPU s)
    try:
        with open(f"/proc/{cfg['server_pid']}/stat") as fh:
            f = fh.read().rsplit(")", 1)[1].split()
        server = (int(f[11]) + int(f[12])) / TICK
    except (OSError, IndexError, ValueError):
        server = None
    return server, time.process_time()


def spent(before):
    after = cpu()
    srv = None if before[0] is None or after[0] is None else after[0] - before[0]
    return {"server_cpu_s": srv, "client_cpu_s": after[1] - before[1]}


def body(i, n):
    return {"requests": [items[(i + k) % len(items)] for k in range(n)]}


async def single(client):
    rate, dur = cfg["rps"], cfg["duration_s"]
    total = int(rate * dur)
    lat, late, errors = [], [], 0

    async def one(i, due):
        nonlocal errors
        t0 = time.perf_counter()
        try:
            r = await client.post(url, json=body(i, 1))
            ok = r.status_code == 200
        except httpx.HTTPError:
            ok = False
        t1 = time.perf_counter()
        if ok:
            lat.append(t1 - t0)
            late.append(t1 - due)
        else:
            errors += 1

    tasks = []
    start = time.perf_counter() + 0.05
    for i in range(total):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i, due)))
    sent_end = time.perf_counter()
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=dur + 30)
    return {"sent": total, "send_s": sent_end - start, "wall_s": time.perf_counter() - start,
            "lat": lat, "late": late, "errors": errors}


async def bulk(client):
    n, dur = cfg["bulk_items"], cfg["duration_s"]
    lat, errors, done = [], 0, 0
    stop = time.perf_counter() + dur

    async def worker(w):
        nonlocal errors, done
        i = w * 1000
        while time.perf_counter() < stop:
            t0 = time.perf_counter()
            try:
                r = await client.post(url, json=body(i, n))
                ok = r.status_code == 200 and len(r.json()["forecasts"]) == n
            except (httpx.HTTPError, KeyError, ValueError):
                ok = False
            if ok:
                lat.append(time.perf_counter() - t0)
                done += n
            else:
                errors += 1
            i += n

    start = time.perf_counter()
    await asyncio.wait_for(
        asyncio.gather(*(worker(w) for w in range(cfg["bulk_connections"]))), timeout=dur + 30
    )
    return {"wall_s": time.perf_counter() - start, "lat": lat, "forecasts": done,
            "errors": errors}


async def main():
    limits = httpx.Limits(max_connections=256, max_keepalive_connections=256)
    async with httpx.AsyncClient(limits=limits, timeout=10.0) as client:
        for i in range(200):  # warm-up: connections, caches, first-call paths
            await client.post(url, json=body(i, 1 if i % 2 else cfg["bulk_items"]))
        c0 = cpu()
        s = await single(client)
        s |= spent(c0)
    limits = httpx.Limits(max_connections=cfg["bulk_connections"])
    async with httpx.AsyncClient(limits=limits, timeout=30.0) as client:
        c0 = cpu()
        b = await bulk(client)
        b |= spent(c0)
    json.dump({"single": s, "bulk": b}, sys.stdout)


asyncio.run(main())
"""


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


def _prepare(home: Path) -> list[dict[str, Any]]:
    """Ingest the demo workload, train a champion; return forecast items to send."""
    from core import Settings
    from feature_store import DuckDBStore
    from feature_store.importers import get_importer
    from feature_store.workload import WorkloadConfig, generate_workload, write_workload
    from pipelines.cli._train import _quiet_training_stack

    settings = Settings(home=home)
    home.mkdir(parents=True, exist_ok=True)
    table = generate_workload(WorkloadConfig(seed=0, n_records=RECORDS))
    demo = home / "workload.parquet"
    write_workload(table, demo)
    _quiet_training_stack()
    from pipelines.train import train_served_model

    with DuckDBStore(settings.resolved_store_path) as store:
        store.ingest_batches(get_importer("parquet").read(demo))
        train_served_model(settings, store, SERVED_MODEL, trials=2, timeout_s=60)
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
    """Start the service, drive the load generator, stop the service."""
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    bin_dir = Path(sys.executable).parent
    log = home / "serve.log"
    env = {**os.environ, "TAILCAST_HOME": str(home)}
    with log.open("wb") as fh:
        proc = subprocess.Popen(
            [str(bin_dir / "tailcast"), "serve", "--host", "127.0.0.1", "--port", str(port)],
            stdout=fh,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    try:
        _wait_ready(base, proc, log)
        cfg = {
            "base": base,
            "items": items,
            "rps": SINGLE_RPS,
            "duration_s": DURATION_S,
            "bulk_items": BULK_ITEMS,
            "bulk_connections": BULK_CONNECTIONS,
            "server_pid": proc.pid,
        }
        out = subprocess.run(
            [sys.executable, "-c", _LOADGEN],
            input=json.dumps(cfg).encode(),
            capture_output=True,
            timeout=4 * DURATION_S + 120,
            check=False,
        )
        if out.returncode != 0:
            raise RuntimeError(f"load generator failed:\n{out.stderr.decode()[-4000:]}")
        result: dict[str, Any] = json.loads(out.stdout)
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


def run() -> str:
    """Run the benchmark; return the Markdown body for BENCHMARKS.md."""
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        items = _prepare(home)
        res = _measure(home, items)
    s, b = res["single"], res["bulk"]
    ms = 1000.0
    s_lat: list[float] = s["lat"]
    s_late: list[float] = s["late"]
    b_lat: list[float] = b["lat"]
    achieved = len(s_lat) / s["wall_s"] if s["wall_s"] > 0 else 0.0
    s_p99 = _quantile(s_lat, 0.99) * ms
    b_rate = b["forecasts"] / b["wall_s"] if b["wall_s"] > 0 else 0.0
    single_ok = "met" if s_p99 <= 10.0 and s["errors"] == 0 else "not met"
    bulk_ok = "met" if b_rate >= 20_000 and b["errors"] == 0 else "not met"
    cores = os.cpu_count() or 0
    return (
        f"`tailcast serve` (uvicorn, one worker) in its own process on loopback, serving a "
        f"real `{SERVED_MODEL}` champion (demo workload seed 0, {RECORDS:,} records, "
        "2 search trials); load from a separate asyncio + httpx process on the same machine "
        f"({cores} cores shared by both). Items: workload rows with prompt text, device and "
        "input_tokens; default quantiles. Latency is client-side: send to full response.\n\n"
        "| scenario | offered | achieved | ok / errors | p50 ms | p95 ms | p99 ms | "
        "bar | verdict |\n|---|---:|---:|---:|---:|---:|---:|---|---|\n"
        f"| single, open loop, {DURATION_S:.0f} s | {SINGLE_RPS} req/s | "
        f"{achieved:,.0f} req/s | {len(s_lat):,} / {s['errors']:,} | "
        f"{_quantile(s_lat, 0.5) * ms:.1f} | {_quantile(s_lat, 0.95) * ms:.1f} | "
        f"{s_p99:.1f} | p99 <= 10 ms at 500 req/s | {single_ok} |\n"
        f"| bulk, {BULK_ITEMS}/call, {BULK_CONNECTIONS} connections, {DURATION_S:.0f} s | "
        f"closed loop | **{b_rate:,.0f} forecasts/s** ({len(b_lat) / b['wall_s']:,.1f} "
        f"calls/s) | {len(b_lat):,} / {b['errors']:,} | {_quantile(b_lat, 0.5) * ms:.1f} | "
        f"{_quantile(b_lat, 0.95) * ms:.1f} | {_quantile(b_lat, 0.99) * ms:.1f} | "
        f">= 20,000 forecasts/s | {bulk_ok} |\n\n"
        f"Single, measured from each call's scheduled send time instead (includes any "
        f"generator lag; no coordinated omission): p99 {_quantile(s_late, 0.99) * ms:.1f} ms; "
        f"the {s['sent']:,} sends took {s['send_s']:.2f} s to issue.\n\n"
        f"{_cpu_line('Single', s, len(s_lat), len(s_lat))}  \n"
        f"{_cpu_line('Bulk', b, len(b_lat), b['forecasts'])}\n"
    )
