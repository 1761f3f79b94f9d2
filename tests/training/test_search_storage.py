"""The Optuna study is shared through its storage: SQLite by default, PostgreSQL too."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from core.predictor import TextSpec
from training import SearchSpace, TrainConfig, TrainingData, group_keys, split_by_group
from training._search import run_search

BASE = TrainConfig(
    hidden=(8,), max_epochs=4, patience=2, batch_size=256, numeric=("log_input_tokens",)
)
SPACE = SearchSpace(text_variants=(TextSpec(kind="none"),), widths=(8, 16), depth=(1, 1))


def data() -> TrainingData:
    rng = np.random.default_rng(0)
    n = 1500
    tokens = rng.integers(10, 4000, n).astype(float)
    return TrainingData(
        cols={
            "request_id": np.array([f"r{i}" for i in range(n)], dtype=object),
            "served_model": np.array(["m"] * n, dtype=object),
            "device": np.array(["h100"] * n, dtype=object),
            "input_tokens": tokens,
        },
        y=(0.5 + tokens / 1000) * np.exp(0.3 * rng.standard_normal(n)),
    )


def no_text(spec: TextSpec, prompts: object, keys: object) -> tuple[np.ndarray, None, None]:
    return np.zeros((1500, 0)), None, None


def two_workers(storage: str) -> None:
    d = data()
    split = split_by_group(group_keys(d.cols))
    kwargs = {
        "base": BASE,
        "space": SPACE,
        "timeout": None,
        "storage": storage,
        "study_name": "shared",
    }
    first = run_search(d, split, no_text, trials=2, seed=0, **kwargs)  # type: ignore[arg-type]
    second = run_search(d, split, no_text, trials=2, seed=1, **kwargs)  # type: ignore[arg-type]
    assert len(first.trials) == 2
    # The second worker sees all four trials; two of them ran elsewhere (no predictor here).
    assert len(second.trials) == 4
    assert sum(t.predictor is None for t in second.trials) == 2
    assert second.selected is not None
    assert second.selected.val_loss <= min(t.val_loss for t in second.trials) * 1.02


@pytest.mark.slow
def test_workers_share_a_sqlite_study(tmp_path: Path) -> None:
    two_workers(f"sqlite:///{tmp_path / 'optuna.db'}")


@pytest.mark.slow
@pytest.mark.postgres
def test_workers_share_a_postgres_study(
    postgres_database: Callable[[], contextlib.AbstractContextManager[str]],
) -> None:
    with postgres_database() as database:
        two_workers(f"postgresql+psycopg2://postgres@127.0.0.1:5432/{database}")
