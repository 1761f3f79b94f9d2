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


WORKER = """
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("search_storage", {path!r})
here = importlib.util.module_from_spec(spec)
spec.loader.exec_module(here)
BASE, data, no_text = here.BASE, here.data, here.no_text
from core.predictor import TextSpec
from training import SearchSpace, group_keys, split_by_group
from training._search import run_search

space = SearchSpace(
    text_variants=(TextSpec(kind="none"), TextSpec(kind="none", max_tokens=64)),
    widths=(8, 16),
    depth=(1, 1),
    seed_text_variants=True,
)
d = data()
result = run_search(
    d, split_by_group(group_keys(d.cols)), no_text, base=BASE, space=space, trials=3,
    timeout=None, storage=sys.argv[1], study_name="concurrent", seed=int(sys.argv[2]),
)
print(json.dumps([t.number for t in result.trials if t.predictor is not None]))
"""


def concurrent_workers(storage: str, workers: int = 2) -> list[list[int]]:
    """Start ``workers`` processes on one study at once; each one's own trial numbers."""
    import json
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith(("TAILCAST_", "MLFLOW_"))}
    script = WORKER.format(path=str(Path(__file__).resolve()))
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, storage, str(seed)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for seed in range(workers)
    ]
    outputs = []
    for proc in procs:
        try:
            out, err = proc.communicate(timeout=300)
        finally:
            proc.kill()
        assert proc.returncode == 0, err[-2000:]
        outputs.append(json.loads(out.strip().splitlines()[-1]))
    return outputs


@pytest.mark.slow
@pytest.mark.postgres
def test_concurrent_workers_share_a_postgres_study_without_running_a_trial_twice(
    postgres_database: Callable[[], contextlib.AbstractContextManager[str]],
) -> None:
    import optuna

    with postgres_database() as database:
        storage = f"postgresql+psycopg2://postgres@127.0.0.1:5432/{database}"
        mine = concurrent_workers(storage)
        study = optuna.load_study(study_name="concurrent", storage=storage)
        trials = study.get_trials(deepcopy=False)
    ran = [n for numbers in mine for n in numbers]
    # Every trial of the study ran in exactly one worker, and each worker ran its three.
    assert sorted(ran) == sorted(t.number for t in trials)
    assert len(ran) == len(set(ran)) == 6
    assert all(len(numbers) == 3 for numbers in mine)
    # The text-variant seeds were enqueued once, by the worker that created the study.
    seeded = [t for t in trials if "fixed_params" in t.system_attrs]
    assert len(seeded) == 2
    assert len({t.params["text"] for t in seeded}) == 2
