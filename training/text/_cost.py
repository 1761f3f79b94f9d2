"""What a text variant costs on the serving hot path, per prompt."""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from core.predictor import TextSpec, text_featurizer
from training.text._static_table import load_or_build_static_table
from training.text._types import F32


@contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """Run the block with ``threads`` torch intra-op threads, then restore the setting."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def measure_text_cost_us(
    spec: TextSpec,
    sample_prompts: Sequence[str | None],
    repeats: int = 3,
    *,
    table: F32 | None = None,
    tokenizer_json: str | None = None,
    table_dir: str | Path | None = None,
) -> float:
    """Microseconds per prompt of the inference featurizer, one prompt per call.

    Runs the featurizer :func:`core.predictor.text_featurizer` builds (what a bundle
    runs) on each sample prompt alone, as the hot path does, after one warm-up call
    (so model loading is excluded). For ``encoder``, torch runs on one thread during
    the measurement (the previous setting is restored).

    Args:
        spec: The text variant.
        sample_prompts: Prompts to time (empty ones are skipped).
        repeats: Passes over the sample; the result is the median over passes of the
            mean time per prompt (mean over the workload, median against noise).
        table: Token table for ``static_table`` (e.g. a bundle's projected table);
            default: the raw distilled table from ``table_dir``.
        tokenizer_json: Tokenizer for ``table``.
        table_dir: Cache directory of distilled tables (see
            :func:`training.text.load_or_build_static_table`).

    Returns:
        Median microseconds per prompt (0.0 for ``kind='none'``).
    """
    if spec.kind == "none":
        return 0.0
    prompts = [p for p in sample_prompts if p]
    if not prompts or repeats < 1:
        raise ValueError("need at least one non-empty prompt and one repeat")
    if spec.kind == "static_table" and (table is None or tokenizer_json is None):
        table, tokenizer_json = load_or_build_static_table(table_dir, spec.encoder_layers)
    featurizer = text_featurizer(spec, table, tokenizer_json)
    assert featurizer is not None

    def passes() -> list[float]:
        featurizer.transform(prompts[:1])  # warm-up: loads models, fills caches
        per_prompt = []
        for _ in range(repeats):
            started = time.perf_counter()
            for prompt in prompts:
                featurizer.transform([prompt])
            per_prompt.append((time.perf_counter() - started) / len(prompts))
        return per_prompt

    if spec.kind == "encoder":
        with torch_threads(1):
            timings = passes()
    else:
        timings = passes()
    return statistics.median(timings) * 1e6
