"""Limits and tunables of the prediction service (everything not in :class:`core.Settings`).

Example:
    >>> ServingConfig().max_batch_items
    10000
"""

from __future__ import annotations

from dataclasses import dataclass, field

from serving.otlp import OtlpMapping


@dataclass(frozen=True, slots=True)
class ServingConfig:
    """Service limits and cache settings.

    Attributes:
        max_batch_items: Most items one forecast or completion call may carry; a larger
            batch is answered 413.
        max_body_bytes: Largest request body accepted, bytes; a larger one is answered
            413 before it is parsed.
        endpoint_stats_ttl_s: How long the endpoint features of one
            (served_model, device) stay cached, seconds.
        endpoint_window: Completions the endpoint features look back over (the same
            window training uses).
        registry_timeout_s: Longest a read-only endpoint waits for the registry before
            answering from what is loaded, seconds.
        registry_poll_timeout_s: Longest a registry poll (also ``POST
            /v1/models/reload``) waits for the registry's answers before reporting it
            unreachable in ``/readyz`` and ``tailcast_registry_up``, seconds; the last
            good models keep serving.
        registry_connect_timeout_s: Seconds a PostgreSQL or MySQL registry database may
            take to connect; it is checked once before MLflow opens it (whose own
            engine retries last about 100 s).
        mlflow_http_timeout_s: When set, the service bounds this process's MLflow HTTP
            calls as it connects to the registry: seconds per connect and per read
            (``MLFLOW_HTTP_REQUEST_TIMEOUT``); ``None`` leaves MLflow's settings (120 s,
            7 retries with backoff: about four minutes per call to a dead server).
            Variables the operator set win. ``tailcast serve`` sets 5.
        mlflow_http_retries: Retries of a failed MLflow HTTP call when
            ``mlflow_http_timeout_s`` is set (``MLFLOW_HTTP_REQUEST_MAX_RETRIES``).
        load_before_serving: Whether the app's start waits for the first registry poll
            (at most ``registry_poll_timeout_s`` while the registry does not answer)
            before it serves. ``tailcast serve`` sets False: ``/healthz`` answers at
            once and ``/readyz`` is 503 until a champion is loaded.
        blas_threads: BLAS threads of the process (1: the predictor's small matrix
            products run fastest without thread hand-offs on a busy machine).
        switch_interval_s: The interpreter's thread switch interval, seconds (Python's
            default is 5 ms: the event loop could wait that long for the GIL while the
            forecast thread computes; a shorter interval bounds that wait).
        inline_batch_items: Forecast batches of at most this many requests run on the
            event loop (a thread hand-off each way costs more than a few rows of model
            math, and more still on a busy machine); larger ones run on the forecast
            thread. 0: always the thread. ``tailcast serve`` sets 64: measured, single
            forecasts at 500 req/s cost less CPU and the highest rate with p99 <= 10 ms
            rose from 1,500 to 2,500 req/s (BENCHMARKS.md, *rate*).
        completion_linger_s: Seconds an idle completions writer waits for more calls
            before it opens a store transaction (group commit of calls posted one at a
            time: each answer waits up to this much longer, the store does a fraction
            of the transactions); 0: none. ``tailcast serve`` sets 0.05.
        llmd_served_model: Served model under which llm-d training data is stored; its
            TTFT and TPOT predictors are ``<name>.ttft`` and ``<name>.tpot``.
        llmd_quantile: Level at which llm-d endpoints answer ``ttft_ms``/``tpot_ms``
            (llm-d's default is 0.9), in (0, 1).
        adaptive_calibration: Serve forecasts adjusted by the online adaptive conformal
            offsets the drift judge learns (:mod:`serving._calibration`). ``False``:
            every forecast is the model's own, and the judge learns no offsets
            (``tailcast serve --no-adaptive-calibration``).
        calibration_refresh_s: Seconds between reads of the stored offsets on a
            replica that is not the drift judge (its forecasts apply the judge's offsets
            at most this much, plus one judge pass, late), > 0.
        otlp: Which span and resource attributes of ``POST /v1/traces`` become which
            completion-record fields (vLLM's names, then the OpenTelemetry GenAI
            semantic conventions'; see ``docs/otel.md``).
    """

    max_batch_items: int = 10_000
    max_body_bytes: int = 64 * 2**20
    endpoint_stats_ttl_s: float = 5.0
    endpoint_window: int = 50
    registry_timeout_s: float = 5.0
    registry_poll_timeout_s: float = 5.0
    registry_connect_timeout_s: float = 5.0
    mlflow_http_timeout_s: int | None = None
    mlflow_http_retries: int = 1
    load_before_serving: bool = True
    blas_threads: int = 1
    switch_interval_s: float = 0.001
    inline_batch_items: int = 0
    completion_linger_s: float = 0.0
    llmd_served_model: str = "llm-d"
    llmd_quantile: float = 0.9
    adaptive_calibration: bool = True
    calibration_refresh_s: float = 5.0
    otlp: OtlpMapping = field(default_factory=OtlpMapping)

    @classmethod
    def standalone(cls) -> ServingConfig:
        """The limits of a service process (``tailcast serve``, the uvicorn factory).

        It serves at once (``load_before_serving`` False) and bounds MLflow's HTTP calls
        (5 s per connect and read, one retry), so an unreachable registry shows in
        ``/readyz`` within a poll and a reload answers in seconds. Forecast batches of up
        to 64 requests run on the event loop, and completions posted one at a time
        share store transactions (``completion_linger_s`` 0.05).

        >>> ServingConfig.standalone().mlflow_http_timeout_s
        5
        """
        return cls(
            load_before_serving=False,
            mlflow_http_timeout_s=5,
            mlflow_http_retries=1,
            completion_linger_s=0.05,
            inline_batch_items=64,
        )

    def __post_init__(self) -> None:
        if self.max_batch_items < 1 or self.max_body_bytes < 1 or self.endpoint_window < 1:
            raise ValueError("batch, body and window limits must be >= 1")
        if self.endpoint_stats_ttl_s < 0 or self.registry_timeout_s <= 0:
            raise ValueError("cache TTL must be >= 0 and registry timeout > 0")
        if min(self.registry_poll_timeout_s, self.registry_connect_timeout_s) <= 0:
            raise ValueError("registry poll and connect timeouts must be > 0 seconds")
        if (self.mlflow_http_timeout_s or 1) < 1 or self.mlflow_http_retries < 0:
            raise ValueError("MLflow HTTP timeout must be >= 1 s and its retries >= 0")
        if not 0.0 < self.llmd_quantile < 1.0:
            raise ValueError(f"llmd_quantile must lie in (0, 1) (got {self.llmd_quantile})")
        if self.completion_linger_s < 0:
            raise ValueError("completion_linger_s must be >= 0 seconds")
        if self.calibration_refresh_s <= 0:
            raise ValueError("calibration_refresh_s must be > 0 seconds")
