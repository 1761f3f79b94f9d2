"""Progress a person can follow in a terminal and in a piped log alike.

rich draws its bars only on a terminal; with stderr piped to a file (systemd, docker
logs, ``make run | tee``) it shows nothing until a task ends, so a long search looked
stalled for minutes. :class:`LineProgress` is the same :class:`rich.progress.Progress`
with no live display that writes a plain line per task at most every
:data:`EVERY_S` seconds (and when a task completes).
"""

from __future__ import annotations

import time
from typing import Any

from rich.progress import Progress, TaskID

#: Seconds between two progress lines of one task in a piped log.
EVERY_S = 10.0


class LineProgress(Progress):
    """A :class:`Progress` for non-terminals: one line per task every ``EVERY_S`` seconds."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **{**kwargs, "disable": True})
        self._last: dict[TaskID, float] = {}

    def update(self, task_id: TaskID, *args: Any, **kwargs: Any) -> None:
        """Update the task (see rich), then maybe write its line."""
        super().update(task_id, *args, **kwargs)
        self._line(task_id)

    def advance(self, task_id: TaskID, advance: float = 1) -> None:
        """Advance the task (see rich), then maybe write its line."""
        super().advance(task_id, advance)
        self._line(task_id)

    def _line(self, task_id: TaskID) -> None:
        task = next((t for t in self.tasks if t.id == task_id), None)
        if task is None:
            return
        now = time.monotonic()
        done = task.total is not None and task.completed >= task.total
        last = self._last.get(task_id)
        if last is not None and now - last < EVERY_S and not done:
            return
        if done and last == float("inf"):
            return
        self._last[task_id] = float("inf") if done else now
        total = "?" if task.total is None else f"{task.total:g}"
        elapsed = task.elapsed or 0.0
        self.console.print(
            f"{task.description}: {task.completed:g}/{total} ({elapsed:.0f} s)",
            markup=False,
            highlight=False,
        )
