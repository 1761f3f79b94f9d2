"""Progress in a piped log: plain lines while a task runs, not one bar at the end."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from pipelines.cli import _progress
from pipelines.cli._progress import LineProgress


def _run(advances: int, total: int) -> list[str]:
    out = io.StringIO()
    console = Console(file=out, force_terminal=False, width=200)
    with LineProgress(console=console) as progress:
        task = progress.add_task("training", total=total)
        for _ in range(advances):
            progress.advance(task)
    return out.getvalue().splitlines()


def test_a_piped_log_gets_a_line_at_the_start_and_at_completion() -> None:
    lines = _run(advances=5, total=5)  # well within EVERY_S: first and last only
    assert lines[0].startswith("training: 1/5")
    assert lines[-1].startswith("training: 5/5")
    assert len(lines) == 2
    assert all("\x1b" not in line for line in lines)  # no terminal control codes


def test_lines_follow_the_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_progress, "EVERY_S", 0.0)
    lines = _run(advances=4, total=4)
    assert [line.split(" (")[0] for line in lines] == [f"training: {i}/4" for i in range(1, 5)]
