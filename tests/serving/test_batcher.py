"""The micro-batcher: concurrent jobs share runs, answers go back in order, errors per group."""

from __future__ import annotations

import asyncio
import threading

import pytest

from serving._batcher import MicroBatcher


def test_concurrent_jobs_are_coalesced_and_answered_in_order() -> None:
    runs: list[tuple[str, list[int]]] = []
    gate = threading.Event()

    def run(context: str, items: list[int]) -> list[int]:
        gate.wait(5)  # hold the first batch so the others queue up behind it
        runs.append((context, items))
        return [x * 10 for x in items]

    async def main() -> list[list[int]]:
        batcher: MicroBatcher[int, int] = MicroBatcher(run, max_items=100)
        first = asyncio.create_task(batcher.submit("a", [1], "a"))
        await asyncio.sleep(0.05)  # the first batch is running (blocked on the gate)
        rest = [
            asyncio.create_task(batcher.submit(key, items, key))
            for key, items in (("a", [2, 3]), ("b", [4]), ("a", [5]))
        ]
        await asyncio.sleep(0.05)
        gate.set()
        out = await asyncio.gather(first, *rest)
        assert (batcher.batches, batcher.items) == (2, 5)
        batcher.close()
        return out

    assert asyncio.run(main()) == [[10], [20, 30], [40], [50]]
    # the three queued jobs ran as one batch: one call per key, jobs concatenated
    assert runs == [("a", [1]), ("a", [2, 3, 5]), ("b", [4])]


def test_a_failing_group_fails_only_its_own_jobs_and_size_caps_batches() -> None:
    def run(context: str, items: list[int]) -> list[int]:
        if context == "bad":
            raise ValueError("broken model")
        return items

    async def main() -> None:
        batcher: MicroBatcher[int, int] = MicroBatcher(run, max_items=2)
        good = batcher.submit("ok", [1, 2], "ok")
        bad = batcher.submit("bad", [3], "bad")
        big = batcher.submit("ok", [4, 5, 6], "ok")  # larger than max_items: runs alone
        results = await asyncio.gather(good, bad, big, return_exceptions=True)
        assert results[0] == [1, 2]
        assert isinstance(results[1], ValueError)
        assert results[2] == [4, 5, 6]
        assert batcher.batches == 3
        batcher.close()

    asyncio.run(main())


def test_max_items_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_items"):
        MicroBatcher(lambda c, items: items, max_items=0)
    with pytest.raises(ValueError, match="linger_s"):
        MicroBatcher(lambda c, items: items, linger_s=-1.0)


def test_tiny_batches_can_run_on_the_event_loop_and_larger_ones_on_the_thread() -> None:
    threads: list[tuple[int, bool]] = []
    loop_thread = threading.get_ident()

    def run(context: str, items: list[int]) -> list[int]:
        threads.append((len(items), threading.get_ident() == loop_thread))
        return items

    async def main() -> None:
        batcher: MicroBatcher[int, int] = MicroBatcher(run, max_items=100, inline_items=2)
        assert await batcher.submit("k", [1, 2], "k") == [1, 2]
        assert await batcher.submit("k", [1, 2, 3], "k") == [1, 2, 3]
        batcher.close()

    asyncio.run(main())
    assert threads == [(2, True), (3, False)]


def test_a_lingering_batcher_runs_calls_sent_one_at_a_time_together() -> None:
    runs: list[list[int]] = []

    def run(context: str, items: list[int]) -> list[int]:
        runs.append(items)
        return items

    async def main(linger_s: float) -> None:
        batcher: MicroBatcher[int, int] = MicroBatcher(run, max_items=100, linger_s=linger_s)
        calls = []
        for i in range(5):  # one call every 10 ms, each alone
            calls.append(asyncio.create_task(batcher.submit("k", [i], "k")))
            await asyncio.sleep(0.01)
        assert await asyncio.gather(*calls) == [[0], [1], [2], [3], [4]]
        batcher.close()

    asyncio.run(main(0.0))
    assert runs == [[0], [1], [2], [3], [4]]
    runs.clear()
    asyncio.run(main(1.0))  # all five arrive within the linger: one run
    assert runs == [[0, 1, 2, 3, 4]]
