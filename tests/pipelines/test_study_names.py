"""Searches with other text choices never collide in one Optuna storage.

``tailcast run``'s first champion searches the cheap text variants; ``tailcast train``
then searched all of them in the same study and Optuna refused ("CategoricalDistribution
does not support dynamic value space"). A search whose choices differ from the study's
now joins ``<study>-<hash of its space>``; a search of the same space still joins.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import optuna
import pytest

from core.predictor import TextSpec
from training import SearchSpace, TrainConfig, TrainingData, group_keys, split_by_group
from training._search import joinable_study_name, run_search, search_distributions

BASE = TrainConfig(
    hidden=(8,), max_epochs=3, patience=2, batch_size=256, numeric=("log_input_tokens",)
)
FIRST_CHAMPION = SearchSpace(  # like pipelines.quick: fewer text variants
    text_variants=(TextSpec(kind="none"),),
    widths=(8,),
    depth=(1, 1),
)
TRAIN = FIRST_CHAMPION.model_copy(
    update={"text_variants": (TextSpec(kind="none"), TextSpec(kind="none", max_tokens=64))}
)


def data(n: int = 600) -> TrainingData:
    rng = np.random.default_rng(0)
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
    return np.zeros((600, 0)), None, None


def search(space: SearchSpace, storage: str, trials: int = 2) -> int:
    """Run ``trials`` trials of ``space`` in study ``tailcast-m-latency_s``; trials seen."""
    d = data()
    result = run_search(
        d,
        split_by_group(group_keys(d.cols)),
        no_text,
        base=BASE,
        space=space,
        trials=trials,
        timeout=None,
        storage=storage,
        study_name="tailcast-m-latency_s",
    )
    assert result.selected is not None
    return len(result.trials)


@pytest.mark.slow
def test_first_champion_then_train_with_other_text_choices_both_succeed(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    assert search(FIRST_CHAMPION, storage) == 2
    assert search(TRAIN, storage) == 2  # a study of its own: Optuna raised here before
    assert search(FIRST_CHAMPION, storage, trials=1) == 3  # the same space still joins
    names = {s.study_name: s.n_trials for s in optuna.get_all_study_summaries(storage)}
    hashed = joinable_study_name(
        "tailcast-m-latency_s",
        storage,
        search_distributions(TRAIN, [v.model_dump_json() for v in TRAIN.text_variants]),
    )
    assert hashed.startswith("tailcast-m-latency_s-")
    assert names == {"tailcast-m-latency_s": 3, hashed: 2}


def test_a_missing_study_or_memory_storage_keeps_the_name(tmp_path: Path) -> None:
    dists = search_distributions(TRAIN, ["a", "b"])
    assert joinable_study_name("s", None, dists) == "s"
    assert joinable_study_name("s", f"sqlite:///{tmp_path / 'o.db'}", dists) == "s"
