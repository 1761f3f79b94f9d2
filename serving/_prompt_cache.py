"""Projected prompt features cached by prompt hash (LRU), one cache per loaded model.

Routers send the same prompts (system prompts, retried calls, agent loops) again and
again; featurizing a prompt costs tens of microseconds to milliseconds depending on
the text features, so each loaded model keeps the projected rows of recent prompts.
Keys are 128-bit BLAKE2b digests of the prompt, so the cache holds no prompt text.

Example:
    >>> import numpy as np
    >>> cache = PromptCache(max_entries=2)
    >>> calls = []
    >>> def featurize(prompts):
    ...     calls.append(len(prompts))
    ...     return np.ones((len(prompts), 3))
    >>> cache.rows(["a", None, "a", "b"], 3, featurize).sum(axis=1).tolist()
    [3.0, 0.0, 3.0, 3.0]
    >>> cache.rows(["b", "a"], 3, featurize).shape, calls
    ((2, 3), [2])
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
Featurize = Callable[[list[str]], F64]


def prompt_key(prompt: str) -> bytes:
    """The cache key of a prompt: its 16-byte BLAKE2b digest."""
    return hashlib.blake2b(prompt.encode("utf-8", "surrogatepass"), digest_size=16).digest()


class PromptCache:
    """LRU map prompt digest -> projected text row (thread-safe).

    Args:
        max_entries: Most prompts kept; the least recently used go first.
    """

    def __init__(self, max_entries: int = 65_536) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be >= 1")
        self.max_entries = max_entries
        self.hits = 0
        self.misses = 0
        self._rows: OrderedDict[bytes, F64] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._rows)

    def rows(self, prompts: Sequence[str | None], dim: int, featurize: Featurize) -> F64:
        """Projected rows of ``prompts``, shape ``(n, dim)``; empty prompts get zeros.

        Args:
            prompts: The prompts (``None`` or ``""``: no text).
            dim: Width of a row.
            featurize: Computes the rows of prompts not cached yet (each unique once).
        """
        out = np.zeros((len(prompts), dim), dtype=np.float64)
        missing: dict[bytes, list[int]] = {}
        texts: dict[bytes, str] = {}
        with self._lock:
            for i, prompt in enumerate(prompts):
                if not prompt:
                    continue
                key = prompt_key(prompt)
                row = self._rows.get(key)
                if row is not None:
                    self._rows.move_to_end(key)
                    out[i] = row
                    self.hits += 1
                else:
                    missing.setdefault(key, []).append(i)
                    texts[key] = prompt
                    self.misses += 1
        if not missing:
            return out
        keys = list(missing)
        fresh = np.asarray(featurize([texts[k] for k in keys]), dtype=np.float64)
        with self._lock:
            for key, row in zip(keys, fresh, strict=True):
                out[missing[key]] = row
                self._rows[key] = row.copy()
            while len(self._rows) > self.max_entries:
                self._rows.popitem(last=False)
        return out
