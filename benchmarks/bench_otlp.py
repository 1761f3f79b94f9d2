"""OTLP ingest: vLLM-shaped spans over OTLP/HTTP into the real ``tailcast serve``.

Measures, in one run on one machine, with the real ``tailcast serve`` process (a fresh
home, DuckDB store) on a free loopback port, :data:`SPANS` new ``llm_request`` spans
(vLLM's attribute names, built beforehand with the real SDK ``TracerProvider``) per
phase:

* **exporter** — through :data:`SENDERS` concurrent ``OTLPSpanExporter`` instances (one
  per simulated vLLM replica, protobuf, batches of 512: what a ``BatchSpanProcessor``
  hands its exporter). The clock includes the exporter's own protobuf encoding, pure
  Python that runs in this one client process (in production each replica encodes
  its own spans);
* **service 512 / service 2048** — the same exporter's request bodies
  (``encode_spans``, encoded beforehand) posted by :data:`SENDERS` concurrent
  keep-alive ``requests`` sessions, as the exporter posts them: the service's own
  ingest rate, batches of 512 (SDK default) and 2048 (a Collector's batch processor);
* **resend** — the service-512 bodies again (an exporter retry, a Collector replay):
  all duplicates, nothing stored.

Each phase checks that exactly its new spans were stored (``tailcast_otlp_spans_total``)
and the store holds ``3 * SPANS`` completions after the service stops. The clock runs
from the first send to the last answer. Client and service share the machine's cores.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from benchmarks._serving_loadgen import cpu
from benchmarks.bench_serving import TOKEN, _stop, start_service

SPANS = 10_000
BATCH = 512
COLLECTOR_BATCH = 2048
SENDERS = 4
BAR_SPANS_PER_S = 10_000
READY_TIMEOUT_S = 120.0
SERVED_MODEL = "llama-3.1-8b"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
T0_NS = 1_767_268_800 * 10**9


def make_spans(first: int, n: int) -> list[Any]:
    """``n`` finished vLLM-shaped spans (request ids ``cmpl-<first>`` on), real SDK."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import SpanKind

    resource = {"tailcast.served_model": SERVED_MODEL, "tailcast.device": "h100-sxm"}
    provider = TracerProvider(resource=Resource.create({"service.name": "vllm", **resource}))
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("vllm.tracing")
    for i in range(first, first + n):
        arrival = T0_NS + i * 10**7
        e2e = 0.5 + (i % 97) / 50
        span = tracer.start_span("llm_request", kind=SpanKind.SERVER, start_time=arrival)
        span.set_attributes(
            {
                "gen_ai.request.id": f"cmpl-{i}",
                "gen_ai.usage.prompt_tokens": 200 + i % 1000,
                "gen_ai.usage.completion_tokens": 50 + i % 300,
                "gen_ai.request.temperature": 0.7,
                "gen_ai.request.top_p": 0.95,
                "gen_ai.request.max_tokens": 1024,
                "gen_ai.request.n": 1,
                "gen_ai.latency.time_in_queue": 0.002,
                "gen_ai.latency.time_to_first_token": e2e / 10,
                "gen_ai.latency.e2e": e2e,
            }
        )
        span.end(end_time=arrival + int(e2e * 1e9))
    spans = list(memory.get_finished_spans())
    provider.shutdown()
    return spans


def export(url: str, spans: list[Any], senders: int) -> float:
    """Export ``spans`` in batches of :data:`BATCH` over ``senders`` exporters; seconds."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace.export import SpanExportResult

    clients = [
        OTLPSpanExporter(endpoint=f"{url}/v1/traces", headers=AUTH, timeout=60)
        for _ in range(senders)
    ]
    shares = [spans[k::senders] for k in range(senders)]

    def run(k: int) -> None:
        share = shares[k]
        for i in range(0, len(share), BATCH):
            result = clients[k].export(share[i : i + BATCH])
            if result is not SpanExportResult.SUCCESS:
                raise RuntimeError(f"export failed: {result}")

    seconds = _timed(run, senders)
    for client in clients:
        client.shutdown()  # type: ignore[no-untyped-call]
    return seconds


def encode(spans: list[Any], batch: int) -> list[bytes]:
    """The request bodies the exporter sends for ``spans`` in batches of ``batch``."""
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    return [
        encode_spans(spans[i : i + batch]).SerializeToString() for i in range(0, len(spans), batch)
    ]


def post(url: str, bodies: list[bytes], senders: int) -> float:
    """Post ``bodies`` over ``senders`` keep-alive sessions, as the exporter does; seconds."""
    import requests

    headers = {**AUTH, "Content-Type": "application/x-protobuf"}
    sessions = [requests.Session() for _ in range(senders)]

    def run(k: int) -> None:
        for body in bodies[k::senders]:
            res = sessions[k].post(f"{url}/v1/traces", data=body, headers=headers, timeout=60)
            if res.status_code != 200 or res.content:  # a partial success has a body
                raise RuntimeError(f"export answered {res.status_code}: {res.content[:200]!r}")

    seconds = _timed(run, senders)
    for session in sessions:
        session.close()
    return seconds


def _timed(run: Callable[[int], None], senders: int) -> float:
    start = time.perf_counter()
    with ThreadPoolExecutor(senders) as pool:
        list(pool.map(run, range(senders)))
    return time.perf_counter() - start


def spans_metric(url: str, outcome: str) -> int:
    """``tailcast_otlp_spans_total{outcome}`` of the service."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=30) as resp:
        text = resp.read().decode()
    prefix = f'tailcast_otlp_spans_total{{outcome="{outcome}"}} '
    for line in text.splitlines():
        if line.startswith(prefix):
            return int(float(line[len(prefix) :]))
    return 0


def wait_settled(url: str, proc: Any, log: Path) -> None:
    """Wait until the service answers and its first registry poll is done (the poll
    creates the embedded MLflow database: seconds of CPU the phases must not share)."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"tailcast serve exited ({proc.returncode}); see {log}")
        try:
            with urllib.request.urlopen(f"{url}/metrics", timeout=2) as resp:
                if "tailcast_registry_up 1.0" in resp.read().decode():
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"tailcast serve not settled after {READY_TIMEOUT_S:.0f} s")


Row = tuple[str, int, float, int, float | None]


def measure(home: Path) -> list[Row]:
    """Run the phases: (phase, senders, seconds, spans stored, service CPU seconds)."""
    exported = make_spans(0, SPANS)
    bodies = encode(make_spans(SPANS, SPANS), BATCH)
    collector = encode(make_spans(2 * SPANS, SPANS), COLLECTOR_BATCH)
    log = home / "serve.log"
    proc, port = start_service(home, log, 3600)
    url = f"http://127.0.0.1:{port}"
    rows: list[Row] = []
    try:
        wait_settled(url, proc, log)
        phases: list[tuple[str, Callable[[], float]]] = [
            ("exporter", lambda: export(url, exported, SENDERS)),
            ("service 512", lambda: post(url, bodies, SENDERS)),
            ("service 2048", lambda: post(url, collector, SENDERS)),
            ("resend", lambda: post(url, bodies, SENDERS)),
        ]
        for phase, send in phases:
            before, (cpu_before, _) = spans_metric(url, "accepted"), cpu(proc.pid)
            seconds = send()
            cpu_after, _ = cpu(proc.pid)
            used = None if cpu_before is None or cpu_after is None else cpu_after - cpu_before
            new = spans_metric(url, "accepted") - before
            rows.append((phase, SENDERS, seconds, new, used))
    finally:
        _stop(proc)
    return rows


def stored_records(home: Path) -> int:
    from feature_store import open_store

    with open_store(home / "store.duckdb", read_only=True) as store:
        return store.stats().records


def run() -> str:
    """The Markdown section: spans/s per phase, the bar, stored counts."""
    with tempfile.TemporaryDirectory(prefix="tailcast-otlp-") as tmp:
        home = Path(tmp)
        rows = measure(home)
        records = stored_records(home)
    lines = [
        f"{SPANS:,} vLLM-shaped spans per phase over OTLP/HTTP protobuf into `tailcast "
        f"serve` (DuckDB), {SENDERS} concurrent senders; {os.cpu_count()} cores shared by "
        f"client and service; Python {sys.version.split()[0]}.",
        "",
        "| phase | senders | seconds | spans/s | stored by the phase | service CPU s "
        "| spans per service CPU-second |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for phase, senders, seconds, new, used in rows:
        rate = SPANS / seconds
        per_cpu = "n/a" if not used else f"{SPANS / used:,.0f}"
        used_s = "n/a" if used is None else f"{used:.2f}"
        lines.append(
            f"| {phase} | {senders} | {seconds:.2f} | {rate:,.0f} | {new:,} | {used_s} "
            f"| {per_cpu} |"
        )
    best = max(SPANS / r[2] for r in rows if r[0].startswith("service"))
    expected = [SPANS, SPANS, SPANS, 0]
    stored_ok = [r[3] for r in rows] == expected and records == 3 * SPANS
    lines += [
        "",
        f"Store after the run: {records:,} completions (expected {3 * SPANS:,}): "
        f"{'ok' if stored_ok else 'NOT MET'}. Bar: the service stores >= "
        f"{BAR_SPANS_PER_S:,} spans/s (best service phase {best:,.0f}): "
        f"{'met' if best >= BAR_SPANS_PER_S else 'not met'}.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    print(run())
