"""Micro-batching: concurrent forecast calls answered by one predictor call.

Every ``/v1/forecasts`` (and llm-d ``/predict``) call becomes a job. Jobs that arrive
while the worker thread is busy wait and are then run together, grouped by the
models snapshot and the levels asked for, so at 500 single requests per second the
predictor runs a few dozen vectorized batches instead of 500 one-row calls. There is
no fixed delay by default: an idle batcher starts a job on the next event-loop turn,
so a lone request waits for nothing but the requests parsed in the same turn. A
batcher given a ``linger_s`` (the completions writer's group commit) waits that long
from an idle start, so calls arriving one at a time still share a batch.

The worker is one dedicated thread: the event loop only parses, queues and answers,
and the model math never competes with itself for the GIL.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

logger = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


@dataclass(slots=True)
class Job(Generic[T, R]):
    """One call's items and how to answer them.

    Attributes:
        key: Jobs with equal keys are run together (e.g. models snapshot + levels).
        items: The call's items.
        context: What the run function needs besides the items (same for one key).
        future: Resolved with one answer per item, in order.
    """

    key: Any
    items: Sequence[T]
    context: Any
    future: asyncio.Future[list[R]] = field(repr=False)


#: Runs many jobs' items at once: (context, items) -> one answer per item.
RunBatch = Callable[[Any, list[T]], list[R]]


class MicroBatcher(Generic[T, R]):
    """Coalesces concurrent jobs into batches run on one worker thread.

    Args:
        run: Answers a batch of items sharing one context.
        max_items: Most items in one batch (a larger job still runs, alone).
        name: Worker thread name.
        inline_items: Batches of at most this many items run on the event loop itself
            (two thread hand-offs cost more than a few rows of model math); 0: never.
        linger_s: Seconds an idle batcher waits for more jobs before it starts a batch
            (jobs that arrive while a batch runs go next without waiting); 0: none.
    """

    def __init__(
        self,
        run: RunBatch[T, R],
        max_items: int = 2048,
        name: str = "batch",
        inline_items: int = 0,
        linger_s: float = 0.0,
    ) -> None:
        if max_items < 1 or inline_items < 0 or linger_s < 0:
            raise ValueError("max_items must be >= 1, inline_items and linger_s >= 0")
        self._run = run
        self.max_items = max_items
        self.inline_items = inline_items
        self.linger_s = linger_s
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"tailcast-{name}")
        self._pending: list[Job[T, R]] = []
        self._busy = False
        self._scheduled = False
        self.batches = 0
        self.items = 0

    async def submit(self, key: Any, items: Sequence[T], context: Any) -> list[R]:
        """Queue one call's items; returns their answers once its batch ran.

        Raises:
            Exception: Whatever the run function raised for the batch.
        """
        loop = asyncio.get_running_loop()
        job: Job[T, R] = Job(key, items, context, loop.create_future())
        self._pending.append(job)
        if not self._busy and not self._scheduled:
            self._scheduled = True
            if self.linger_s > 0:
                loop.call_later(self.linger_s, self._start, loop)
            else:
                loop.call_soon(self._start, loop)
        return await job.future

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._scheduled = False
        if self._busy or not self._pending:
            return
        taken: list[Job[T, R]] = []
        total = 0
        while self._pending and (
            not taken or total + len(self._pending[0].items) <= self.max_items
        ):
            job = self._pending.pop(0)
            if job.future.cancelled():
                continue
            taken.append(job)
            total += len(job.items)
        if not taken:
            return
        self.batches += 1
        self.items += total
        if total <= self.inline_items:  # tiny batch: cheaper than two thread hand-offs
            self._deliver(taken, self._compute(taken))
            if self._pending and not self._scheduled:
                self._scheduled = True
                loop.call_soon(self._start, loop)
            return
        self._busy = True
        done = loop.run_in_executor(self._pool, self._compute, taken)
        done.add_done_callback(lambda f: self._finish(loop, taken, f))

    def _compute(self, jobs: list[Job[T, R]]) -> list[list[R] | BaseException]:
        groups: dict[Any, list[Job[T, R]]] = {}
        for job in jobs:
            groups.setdefault(job.key, []).append(job)
        results: dict[int, list[R] | BaseException] = {}
        for group in groups.values():
            items = [item for job in group for item in job.items]
            try:
                answers = self._run(group[0].context, items)
            except Exception as exc:  # answered to each caller of the group
                for job in group:
                    results[id(job)] = exc
                continue
            start = 0
            for job in group:
                results[id(job)] = answers[start : start + len(job.items)]
                start += len(job.items)
        return [results[id(job)] for job in jobs]

    def _finish(
        self,
        loop: asyncio.AbstractEventLoop,
        jobs: list[Job[T, R]],
        done: asyncio.Future[list[list[R] | BaseException]],
    ) -> None:
        self._busy = False
        try:
            outcomes = done.result()
        except BaseException as exc:  # pragma: no cover - _compute catches per group
            outcomes = [exc] * len(jobs)
        self._deliver(jobs, outcomes)
        if self._pending:
            self._start(loop)

    @staticmethod
    def _deliver(jobs: list[Job[T, R]], outcomes: list[list[R] | BaseException]) -> None:
        for job, outcome in zip(jobs, outcomes, strict=True):
            if job.future.done():
                continue
            if isinstance(outcome, BaseException):
                job.future.set_exception(outcome)
            else:
                job.future.set_result(outcome)

    def close(self) -> None:
        """Stop the worker thread (queued jobs are not run)."""
        self._pool.shutdown(wait=False, cancel_futures=True)


def snapshot_key(models: Mapping[str, Any], *parts: Any) -> tuple[Any, ...]:
    """A batch key: the identity of a models snapshot plus hashable ``parts``."""
    return (id(models), *parts)
