"""The training-server side of llm-d's contract: sample counts, flushes, metric lines.

:class:`LlmdTraining` answers ``/data/status``, ``/flush`` and the llm-d lines of
``/metrics`` from the feature store (see :mod:`serving.compat._data` for the split
and the flush cut-offs). Counts are cached for :data:`COUNT_TTL_S` and recounted
after every write this process sees, so a scrape never scans the store twice a second.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path

from feature_store import RecordStore
from serving.compat._data import COLUMNS, FlushMarks, PartCounts, count_parts, flush, load_marks

#: Seconds a sample count is reused.
COUNT_TTL_S = 5.0
#: Feature names of llm-d's TTFT and TPOT models (its ``/metrics`` labels).
TTFT_FEATURES = (
    "kv_cache_percentage",
    "input_token_length",
    "num_request_waiting",
    "num_request_running",
    "prefill_tokens_in_flight",
    "decode_tokens_in_flight",
    "prefix_cache_score",
)
TPOT_FEATURES = (*TTFT_FEATURES[:6], "num_tokens_generated")


class LlmdTraining:
    """Stored llm-d samples of one served model, by part, with flushes.

    Args:
        store: The feature store the samples are in.
        home: The tailcast home (the flush cut-offs live under it).
        served_model: The llm-d served model.
    """

    def __init__(self, store: RecordStore, home: Path, served_model: str) -> None:
        self.store = store
        self.home = home
        self.served_model = served_model
        self._cached: tuple[float, PartCounts, PartCounts] | None = None

    def invalidate(self) -> None:
        """Forget the cached counts (after a write)."""
        self._cached = None

    def _count(self) -> tuple[PartCounts, PartCounts]:
        frame = self.store.training_frame(self.served_model, columns=COLUMNS, require=("ttft_s",))
        return count_parts(frame, load_marks(self.home, self.served_model))

    async def counts(self) -> tuple[PartCounts, PartCounts]:
        """Training and test sample counts (cached for :data:`COUNT_TTL_S`)."""
        hit = self._cached
        if hit is not None and time.monotonic() - hit[0] < COUNT_TTL_S:
            return hit[1], hit[2]
        train, test = await asyncio.to_thread(self._count)
        self._cached = (time.monotonic(), train, test)
        return train, test

    async def flush(self, training: bool, test: bool) -> tuple[PartCounts, PartCounts]:
        """Flush the given parts now; returns the training and test samples flushed."""
        self.invalidate()
        before_train, before_test = await self.counts()
        await asyncio.to_thread(
            flush, self.home, self.served_model, training, test, datetime.now(UTC)
        )
        self.invalidate()
        return (
            before_train if training else PartCounts(),
            before_test if test else PartCounts(),
        )

    def marks(self) -> FlushMarks:
        """The current flush cut-offs."""
        return load_marks(self.home, self.served_model)


def metric_lines(
    model_type: str, objective: str, quantile: float, train: PartCounts, test: PartCounts
) -> str:
    """llm-d's training-server metric lines (untyped Prometheus samples).

    Feature importances are ``NaN``: tailcast's predictors are networks over a
    distribution grid and have no per-feature importance to report.
    """
    lines = [
        f'model_type{{type="{model_type}"}} 1',
        f'objective_type{{type="{objective}"}} 1',
        f"model_quantile{{}} {quantile}",
        "ensemble_active{} 0",
        "ensemble_mode{} 0",
    ]
    for prefix, features in (("ttft", TTFT_FEATURES), ("tpot", TPOT_FEATURES)):
        lines.append(f"{prefix}_intercept{{}} NaN")
        lines += [f'{prefix}_importance{{feature="{f}"}} NaN' for f in features]
    for model, part, n in (
        ("ttft", "train", train.ttft),
        ("tpot", "train", train.tpot),
        ("ttft", "test", test.ttft),
        ("tpot", "test", test.tpot),
    ):
        lines.append(f'training_samples_count{{model="{model}",part="{part}"}} {n}')
    lines.append(f"target_coverage_percent{{}} {quantile * 100:.1f}")
    lines.append(f"target_violation_rate_percent{{}} {(1 - quantile) * 100:.1f}")
    return "\n".join(lines) + "\n"
