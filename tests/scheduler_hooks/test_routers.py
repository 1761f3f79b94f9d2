"""Routers on small hand-built states: exact choices."""

from __future__ import annotations

from collections import deque

import numpy as np
import pytest

from scheduler_hooks import ForecastBook, ReplicaState
from scheduler_hooks.routing import (
    ROUTERS,
    LeastLoadedRouter,
    OracleRouter,
    PowerOfTwoRouter,
    PredictedMeanRouter,
    RandomRouter,
    RoundRobinRouter,
    RoutingContext,
    TailAwareRouter,
    forecast_completion,
    make_router,
    slot_completion,
)

LEVELS = np.array([0.05, 0.5, 0.95])


class Truth:
    def __init__(self, work: np.ndarray, ends: dict[int, float]) -> None:
        self._work, self._ends = work, ends

    def work(self, request: int, device: int) -> float:
        return float(self._work[request, device])

    def end(self, request: int) -> float:
        return self._ends[request]


def ctx(
    seed: int = 0, book: ForecastBook | None = None, truth: Truth | None = None
) -> RoutingContext:
    return RoutingContext(now=10.0, rng=np.random.default_rng(seed), book=book, truth=truth)


def test_registry_names_match_the_cli() -> None:
    assert list(ROUTERS) == [
        "random",
        "round_robin",
        "po2",
        "least_loaded",
        "predicted_mean",
        "tail_aware",
        "oracle",
    ]
    with pytest.raises(ValueError, match="known routers: random"):
        make_router("fastest")


def test_random_is_seeded() -> None:
    reps = [ReplicaState(0) for _ in range(4)]
    picks = [RandomRouter().choose(i, reps, ctx(seed=3)) for i in range(3)]
    assert picks == [int(np.random.default_rng(3).integers(4))] * 3
    c2, ref = ctx(seed=7), np.random.default_rng(7)
    assert [RandomRouter().choose(i, reps, c2) for i in range(5)] == [
        int(ref.integers(4)) for _ in range(5)
    ]


def test_round_robin_cycles_and_resets() -> None:
    router, reps = RoundRobinRouter(), [ReplicaState(0) for _ in range(3)]
    assert [router.choose(i, reps, ctx()) for i in range(5)] == [0, 1, 2, 0, 1]
    router.reset()
    assert router.choose(0, reps, ctx()) == 0


def test_po2_takes_the_shorter_of_two_drawn_queues() -> None:
    reps = [
        ReplicaState(0, running=[1], queue=deque([2, 3])),
        ReplicaState(0, running=[4]),
        ReplicaState(0),
        ReplicaState(0, running=[5], queue=deque([6])),
    ]
    for seed in range(20):
        a, b = (int(x) for x in np.random.default_rng(seed).choice(4, size=2, replace=False))
        expected = b if reps[b].outstanding < reps[a].outstanding else a
        assert PowerOfTwoRouter().choose(0, reps, ctx(seed)) == expected
    assert PowerOfTwoRouter().choose(0, reps[:1], ctx()) == 0


def test_least_loaded_counts_outstanding_per_slot_ties_first() -> None:
    reps = [
        ReplicaState(0, slots=1, running=[1]),
        ReplicaState(0, slots=4, running=[2, 3], queue=deque()),
        ReplicaState(1, slots=2, running=[4]),
    ]
    assert LeastLoadedRouter().choose(0, reps, ctx()) == 1  # 2/4 == 1/2: first wins
    reps[1].queue.append(5)
    assert LeastLoadedRouter().choose(0, reps, ctx()) == 2


def test_slot_completion_plays_fcfs_on_slots() -> None:
    free = np.array([[1.0, 0.0], [3.0, 0.0]])  # draw 0: slots free at 1 and 3; draw 1: idle
    queued = [np.array([4.0, 1.0]), np.array([1.0, 1.0])]
    own = np.array([2.0, 2.0])
    # draw 0: q1 on slot0 (free 5), q2 on slot1 (free 4) -> start 4, done 6
    # draw 1: q1 on slot0 (1), q2 on slot1 (1) -> start 1, done 3
    assert slot_completion(free, queued, own).tolist() == [6.0, 3.0]
    single = np.array([[2.0, 1.0]])
    assert slot_completion(single, queued, own).tolist() == [9.0, 5.0]


def test_oracle_minimises_true_completion() -> None:
    work = np.array([[1.0, 1.0], [6.0, 4.0], [2.0, 1.0], [3.0, 2.0]])
    truth = Truth(work, ends={0: 15.0})
    reps = [
        ReplicaState(0, running=[0], started=[9.0]),  # busy until 15
        ReplicaState(1, queue=deque()),  # idle, slower for request 3? no: device 1
        ReplicaState(1, running=[], queue=deque()),
    ]
    # request 3: replica 0 -> 5 + 3 = 8 s; replica 1 -> 2 s; replica 2 -> 2 s (tie: first)
    assert OracleRouter().choose(3, reps, ctx(truth=truth)) == 1
    reps[1].queue.append(1)  # replica 1 now needs 4 + 2 = 6 s; replica 2 still 2 s
    reps[1].running.append(2)
    reps[1].started.append(10.0)
    truth = Truth(work, ends={0: 15.0, 2: 11.0})
    assert OracleRouter().choose(3, reps, ctx(truth=truth)) == 2
    slow = [ReplicaState(0, speed=0.25), ReplicaState(1)]
    # replica 0 at quarter speed: 3 / 0.25 = 12 s; replica 1: 2 s
    assert OracleRouter().choose(3, slow, ctx(truth=truth)) == 1
    with pytest.raises(ValueError, match="true service times"):
        OracleRouter().choose(3, slow, ctx())


def _book(table: np.ndarray, samples: int = 2000) -> ForecastBook:
    return ForecastBook(LEVELS, lambda ids: table[ids], samples=samples, seed=0)


def test_tail_aware_and_predicted_mean_disagree_on_a_risky_queue() -> None:
    # request 0 runs on replica 0 (device 0): mean about 5.4 s but P95 15 s.
    # request 1 runs on replica 1 (device 1): about 8 s, nearly certain.
    # request 2 (new) is tiny on both device types.
    table = np.array(
        [
            [[0.5, 2.0, 15.0], [0.5, 2.0, 15.0]],
            [[7.9, 8.0, 8.1], [7.9, 8.0, 8.1]],
            [[0.01, 0.02, 0.03], [0.01, 0.02, 0.03]],
        ]
    )
    reps = [
        ReplicaState(0, running=[0], started=[10.0]),
        ReplicaState(1, running=[1], started=[10.0]),
    ]
    assert PredictedMeanRouter().choose(2, reps, ctx(book=_book(table))) == 0
    assert TailAwareRouter(0.95).choose(2, reps, ctx(book=_book(table))) == 1
    assert TailAwareRouter(0.3).choose(2, reps, ctx(book=_book(table))) == 0


def test_tail_aware_conditions_on_elapsed_service() -> None:
    # Both replicas run a request with the same forecast; replica 1's has run 20 s
    # already, past the forecast's P95: what remains is the exponential tail, short.
    table = np.array([[[1.0, 10.0, 20.0]] * 2, [[1.0, 10.0, 20.0]] * 2, [[1.0, 1.0, 1.0]] * 2])
    table[2] = [[0.9, 1.0, 1.1], [0.9, 1.0, 1.1]]
    reps = [
        ReplicaState(0, running=[0], started=[10.0]),
        ReplicaState(1, running=[1], started=[-10.0]),
    ]
    assert TailAwareRouter().choose(2, reps, ctx(book=_book(table))) == 1
    with pytest.raises(ValueError, match="needs forecasts"):
        TailAwareRouter().choose(2, reps, ctx())
    with pytest.raises(ValueError, match="quantile"):
        TailAwareRouter(1.0)


def test_tail_aware_prefers_the_faster_device_for_long_requests() -> None:
    # Idle cluster: the request's own forecast decides; device 1 is twice as fast.
    table = np.array([[[4.0, 10.0, 30.0], [2.0, 5.0, 15.0]]])
    reps = [ReplicaState(0), ReplicaState(1)]
    assert TailAwareRouter().choose(0, reps, ctx(book=_book(table, 256))) == 1
    assert PredictedMeanRouter().choose(0, reps, ctx(book=_book(table, 256))) == 1


def test_shared_percentiles_price_a_queue_at_the_sum_of_its_quantiles() -> None:
    # Device 1 is 2.5x faster. Replica 0 (device 1) runs one request (just started)
    # and queues another; replica 1 (device 0) is idle. Every request has the same
    # forecast, P95 10 s on device 1 and 25 s on device 0.
    fast = [1.0, 2.0, 10.0]
    table = np.array([[[2.5 * x for x in fast], fast]] * 3)
    reps = [ReplicaState(1, running=[0], started=[0.0], queue=deque([1])), ReplicaState(0)]
    book = _book(table)
    shared = np.quantile(forecast_completion(2, reps, book, 0.0, shared=True), 0.95, axis=1)
    independent = np.quantile(forecast_completion(2, reps, book, 0.0), 0.95, axis=1)
    # comonotone draws: the P95 of three requests in a row is the sum of their P95s
    assert shared == pytest.approx([30.0, 25.0], abs=0.05)
    # independent draws: the sum's spread shrinks, and the fast replica looks better
    assert independent[0] == pytest.approx(23.61, abs=0.01)
    assert independent[1] == pytest.approx(shared[1])
    c = ctx(book=book)
    assert TailAwareRouter().choose(2, reps, c) == 1
    assert TailAwareRouter(percentiles="independent").choose(2, reps, c) == 0
    with pytest.raises(ValueError, match="percentiles"):
        TailAwareRouter(percentiles="comonotone")  # type: ignore[arg-type]


def test_shared_quantile_from_two_sorted_draws_equals_the_full_monte_carlo() -> None:
    # Completion is nondecreasing in the shared percentile, slots or not, so the two
    # draws around quantile * (S - 1) give np.quantile over all S draws exactly.
    rng = np.random.default_rng(7)
    n = 40
    table = np.sort(rng.gamma(2.0, 3.0, (n, 2, 3)), axis=2)
    book = _book(table, 256)
    for trial in range(30):
        reps = []
        ids = iter(rng.permutation(n - 1).tolist())
        for _ in range(3):
            slots = int(rng.integers(1, 4))
            running = [next(ids) for _ in range(int(rng.integers(0, slots + 1)))]
            queue = deque(next(ids) for _ in range(int(rng.integers(0, 4))))
            started = rng.uniform(0.0, 10.0, len(running)).tolist()
            device = int(rng.integers(0, 2))
            reps.append(ReplicaState(device, slots, running=running, started=started, queue=queue))
        full = forecast_completion(n - 1, reps, book, 10.0, shared=True)
        assert np.all(np.diff(full, axis=1) >= -1e-9), trial  # nondecreasing per replica
        for q in (0.5, 0.95):
            pos = q * 255
            two = forecast_completion(
                n - 1, reps, book, 10.0, shared=True, columns=(int(pos), int(pos) + 1)
            )
            fast = two[:, 0] + (pos - int(pos)) * (two[:, 1] - two[:, 0])
            np.testing.assert_allclose(fast, np.quantile(full, q, axis=1), rtol=1e-12)
            target = np.quantile(full, q, axis=1)
            pick = TailAwareRouter(q).choose(n - 1, reps, ctx(book=book))
            assert target[pick] == pytest.approx(target.min(), rel=1e-12)  # ties may differ
