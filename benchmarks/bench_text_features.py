"""Hot-path cost of each text variant, per prompt on one thread, and the static-table build.

Run: ``python -c "from benchmarks import bench_text_features as b; print(b.run())"``.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd

from benchmarks._report import ROOT
from core.predictor import TextSpec, TokenTable
from training.text import load_or_build_static_table, measure_text_cost_us, tokenizer_json

F32 = npt.NDArray[np.float32]

DATA = ROOT.parent / "shared" / "data"
SWE = DATA / "agentic" / "minisweagent_calls.csv.gz"
ALPACA = DATA / "prompt_length" / "alpacaeval_instructions.csv"

VARIANTS: tuple[tuple[str, TextSpec], ...] = (
    ("none", TextSpec(kind="none")),
    ("hashed_ngrams (4096, 1-2 grams)", TextSpec(kind="hashed_ngrams")),
    ("static_table (from 6 layers)", TextSpec(kind="static_table")),
    ("encoder L1", TextSpec(kind="encoder", encoder_layers=1)),
    ("encoder L2", TextSpec(kind="encoder", encoder_layers=2)),
    ("encoder L3", TextSpec(kind="encoder", encoder_layers=3)),
    ("encoder L6", TextSpec(kind="encoder", encoder_layers=6)),
)


def prompt_sets(n: int) -> dict[str, list[str]]:
    """The first ``n`` non-empty agentic observations and AlpacaEval instructions."""
    swe = pd.read_csv(SWE, usecols=["prev_text"])["prev_text"].dropna().astype(str)
    alpaca = pd.read_csv(ALPACA, usecols=["instruction"])["instruction"].dropna().astype(str)
    return {
        "minisweagent prev_text": [t for t in swe if t.strip()][:n],
        "AlpacaEval instruction": [t for t in alpaca if t.strip()][:n],
    }


def cold_build(layers: int = 6) -> tuple[float, F32]:
    """Seconds of a cold static-table build (model load included) in a scratch dir."""
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        table, _ = load_or_build_static_table(Path(tmp), layers)
        return time.perf_counter() - started, table


def run(n_prompts: int = 200, repeats: int = 3) -> str:
    """Time every variant on both prompt sets; return the Markdown body for BENCHMARKS.md."""
    sets = prompt_sets(n_prompts)
    build, table = cold_build(6)
    tok = tokenizer_json()
    counter = TokenTable(table, tok)
    tokens = {
        name: statistics.mean(len(ids) for ids in counter.token_ids(prompts))
        for name, prompts in sets.items()
    }
    rows = []
    for label, spec in VARIANTS:
        cells = [
            measure_text_cost_us(spec, prompts, repeats, table=table, tokenizer_json=tok)
            for prompts in sets.values()
        ]
        rows.append(f"| {label} | " + " | ".join(f"{us:,.0f}" for us in cells) + " |")
    header = " | ".join(f"{name} (µs)" for name in sets)
    mean_tokens = ", ".join(f"{name} {t:.0f}" for name, t in tokens.items())
    return (
        f"Microseconds per prompt, one prompt per call (as served), torch on 1 thread, "
        f"median over {repeats} passes of the mean over the first {n_prompts} non-empty "
        f"prompts of each set (mean tokens per prompt: {mean_tokens}; encoder and table "
        "truncate at 256).\n\n"
        f"| text variant | {header} |\n|---|"
        + "---:|" * len(sets)
        + "\n"
        + "\n".join(rows)
        + "\n\n"
        f"Static table build (30,522 tokens through 6 layers, model load included, "
        f"1 thread, bfloat16 where supported): {build:.1f} s.\n"
    )


if __name__ == "__main__":
    print(run())
