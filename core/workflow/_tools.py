"""Tool execution time between calls, by command kind.

An agent's call issues one bash command; the tool (bash) runs it before the next call.
:func:`command_kind` names what kind of command it is (the first program after any
``cd DIR &&`` prefix, with aliases folded), and :class:`ToolTimes` holds the tool-time
quantiles of each kind seen often enough in training plus the pooled distribution
(for calls whose command is not known yet).

Example:
    >>> command_kind("cd /testbed && python -m pytest tests/ -x")
    'python'
    >>> command_kind("python3 reproduce.py"), command_kind(""), command_kind(None)
    ('python', 'none', 'none')
    >>> t = ToolTimes(np.array([0.1, 0.2]), {"python": np.array([1.0, 3.0])})
    >>> t.table("python").tolist(), t.table("grep").tolist()
    ([1.0, 3.0], [0.1, 0.2])
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]

_CD_PREFIX = re.compile(r"^\s*cd\s+\S+\s*(&&|;)\s*")
_ALIASES = {"python3": "python", "pip3": "pip", "pytest": "python", "py.test": "python"}


def command_kind(command: str | None) -> str:
    """The kind of a bash command: its first program, ``cd DIR &&`` prefixes removed."""
    text = (command or "").strip()
    while True:
        stripped = _CD_PREFIX.sub("", text, count=1)
        if stripped == text:
            break
        text = stripped
    words = text.split()
    if not words:
        return "none"
    word = words[0].rsplit("/", 1)[-1].lower()
    return _ALIASES.get(word, word)


class ToolTimes:
    """Tool-time quantiles (seconds) at equally spaced levels ``(h + 0.5) / H``.

    Args:
        pooled: Quantiles over every tool run, shape ``(H,)``.
        by_kind: Quantiles per command kind (kinds with enough training runs).
    """

    def __init__(self, pooled: F64, by_kind: Mapping[str, F64]) -> None:
        self.pooled = np.asarray(pooled, dtype=np.float64)
        self.by_kind = {k: np.asarray(v, dtype=np.float64) for k, v in by_kind.items()}

    def table(self, kind: str | None = None) -> F64:
        """Quantiles for ``kind`` (the pooled ones for an unknown or missing kind)."""
        return self.by_kind.get(kind, self.pooled) if kind is not None else self.pooled

    def quantiles(self, levels: F64, kind: str | None = None) -> F64:
        """Tool-time quantiles at ``levels`` (each in (0, 1)), seconds."""
        table = self.table(kind)
        h = table.shape[0]
        grid = (np.arange(h) + 0.5) / h
        return np.asarray(np.interp(levels, grid, table), dtype=np.float64)

    def mean(self) -> float:
        """Mean pooled tool time, seconds."""
        return float(self.pooled.mean())
