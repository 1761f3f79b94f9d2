"""tail_aware_choice: the hooks' candidate pick agrees with the tail_aware router's reasoning."""

from __future__ import annotations

from collections import deque

import numpy as np
import pytest

from scheduler_hooks import ForecastBook, ReplicaState
from scheduler_hooks._select import MAX_MODELED, tail_aware_choice
from scheduler_hooks.routing import RoutingContext, TailAwareRouter

LEVELS = (0.05, 0.25, 0.5, 0.75, 0.95)
BASE = np.array([1.0, 1.5, 2.0, 3.0, 6.0])


def reference(
    own: np.ndarray, load: list[int], slots: int, seed: int, percentiles: str = "shared"
) -> int:
    """The same decision through the router over a plain ForecastBook (Monte Carlo)."""
    c = own.shape[0]
    table = np.stack([own, own])
    book = ForecastBook(LEVELS, lambda ids: table[np.minimum(ids, 1)], samples=4000, seed=seed)
    reps, nxt = [], 1
    for i, n in enumerate(load):
        ids = list(range(nxt, nxt + n))
        nxt += n
        reps.append(
            ReplicaState(i, slots, running=ids[:slots], started=[0.0] * len(ids[:slots]),
                         queue=deque(ids[slots:]))
        )  # fmt: skip
    assert len(reps) == c
    return TailAwareRouter(0.95, percentiles).choose(  # type: ignore[arg-type]
        0, reps, RoutingContext(0.0, np.random.default_rng(0), book)
    )


def test_speed_beats_queue_length_only_when_it_should() -> None:
    rows = np.stack([BASE * 0.25, BASE, BASE * 2.0])  # fast, nominal, slow device
    assert tail_aware_choice(LEVELS, rows, [0, 0, 0]) == 0
    assert tail_aware_choice(LEVELS, rows, [2, 0, 0]) == 0  # 3 x 1.5 s P95 < 6 s
    assert tail_aware_choice(LEVELS, rows, [12, 0, 0]) == 1  # too much queued on the fast one
    assert tail_aware_choice(LEVELS, rows, [20, 3, 0]) == 2
    assert tail_aware_choice(LEVELS, rows, [20, 6, 0], slots=4) == 0  # slots absorb the queue


@pytest.mark.parametrize("percentiles", ["shared", "independent"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_agrees_with_the_router_over_the_plain_book(seed: int, percentiles: str) -> None:
    rng = np.random.default_rng(seed)
    agree = 0
    for _ in range(20):
        rows = np.outer(rng.uniform(0.2, 2.0, 4), BASE)
        load = rng.integers(0, 6, 4).tolist()
        slots = int(rng.integers(1, 3))
        want = reference(rows, load, slots, seed, percentiles)
        got = tail_aware_choice(
            LEVELS,
            rows,
            load,
            slots,
            samples=4000,
            seed=seed,
            percentiles=percentiles,  # type: ignore[arg-type]
        )
        agree += got == want
    assert agree >= 19  # Monte Carlo against closed form or other draws: a near-tie may flip


def test_shared_closed_form_in_numbers() -> None:
    # P95 is BASE's last level (6 s x the row's scale); rounds = load // slots.
    rows = np.stack([BASE * 0.5, BASE])  # P95 3 s and 6 s
    # candidate 0: 3 rounds x 3 s + 3 s = 12 s; candidate 1: 1 round x 6 s + 6 s = 12 s: tie, first
    assert tail_aware_choice(LEVELS, rows, [3, 1]) == 0
    assert tail_aware_choice(LEVELS, rows, [4, 1]) == 1  # 15 s against 12 s
    assert tail_aware_choice(LEVELS, rows, [4, 1], slots=[2, 1]) == 0  # 2 rounds: 9 s
    assert tail_aware_choice(LEVELS, rows, [999, 0], slots=[1000, 1]) == 0  # a free slot: 3 s
    assert tail_aware_choice(LEVELS, rows, [2000, 0], slots=[1000, 1]) == 1  # 9 s, no cap
    with pytest.raises(ValueError, match="slot count"):
        tail_aware_choice(LEVELS, rows, [1, 1], slots=[1])
    with pytest.raises(ValueError, match="percentiles"):
        tail_aware_choice(LEVELS, rows, [1, 1], percentiles="both")  # type: ignore[arg-type]


def test_outstanding_work_is_capped_and_inputs_checked() -> None:
    rows = np.stack([BASE * 0.5, BASE])
    capped = tail_aware_choice(LEVELS, rows, [MAX_MODELED, 0], percentiles="independent")
    assert capped == tail_aware_choice(
        LEVELS, rows, [10 * MAX_MODELED, 0], percentiles="independent"
    )
    with pytest.raises(ValueError, match="C loads"):
        tail_aware_choice(LEVELS, rows, [1])
    background = np.stack([BASE * 5, BASE * 5])  # long requests in flight everywhere
    assert tail_aware_choice(LEVELS, rows, [1, 0], background=background) == 1
    assert tail_aware_choice(LEVELS, rows, [1, 0]) == 0
