"""Limits and tunables of the prediction service (everything not in :class:`core.Settings`).

Example:
    >>> ServingConfig().max_batch_items
    10000
"""

from __future__ import annotations

from dataclasses import dataclass


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
        blas_threads: BLAS threads of the process (1: the predictor's small matrix
            products run fastest without thread hand-offs on a busy machine).
        switch_interval_s: The interpreter's thread switch interval, seconds (Python's
            default is 5 ms: the event loop could wait that long for the GIL while the
            forecast thread computes; a shorter interval bounds that wait).
        inline_batch_items: Forecast batches of at most this many requests run on the
            event loop (a thread hand-off each way costs more than a few rows of model
            math, and more still on a busy machine); larger ones run on the forecast
            thread. 0: always the thread.
        llmd_served_model: Served model under which llm-d training data is stored; its
            TTFT and TPOT predictors are ``<name>.ttft`` and ``<name>.tpot``.
        llmd_quantile: Level at which llm-d endpoints answer ``ttft_ms``/``tpot_ms``
            (llm-d's default is 0.9), in (0, 1).
    """

    max_batch_items: int = 10_000
    max_body_bytes: int = 64 * 2**20
    endpoint_stats_ttl_s: float = 5.0
    endpoint_window: int = 50
    registry_timeout_s: float = 5.0
    blas_threads: int = 1
    switch_interval_s: float = 0.001
    inline_batch_items: int = 0
    llmd_served_model: str = "llm-d"
    llmd_quantile: float = 0.9

    def __post_init__(self) -> None:
        if self.max_batch_items < 1 or self.max_body_bytes < 1 or self.endpoint_window < 1:
            raise ValueError("batch, body and window limits must be >= 1")
        if self.endpoint_stats_ttl_s < 0 or self.registry_timeout_s <= 0:
            raise ValueError("cache TTL must be >= 0 and registry timeout > 0")
        if not 0.0 < self.llmd_quantile < 1.0:
            raise ValueError(f"llmd_quantile must lie in (0, 1) (got {self.llmd_quantile})")
