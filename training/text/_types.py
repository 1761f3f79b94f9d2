"""Types shared by the text-feature modules: the embedding cache and progress callbacks."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]

#: ``progress(stage, done, total)``: called after each batch of a long step, with the
#: step's label (e.g. ``"static table"``, ``"text features"``), the items done so far
#: and the step's total. A CLI can map each stage to one progress-bar task.
Progress = Callable[[str, int, int], None]


class EmbeddingCache(Protocol):
    """Where prompt embeddings are kept between training runs (structural type).

    The feature store's record stores implement it; so can any object with these two
    methods. Keys are the SHA-256 hex digests of the UTF-8 prompts.
    """

    def get_embeddings(
        self, encoder_id: str, prompt_sha256: Sequence[str]
    ) -> tuple[npt.NDArray[np.bool_], F32]:
        """Cached vectors: (found mask, matrix with zero rows where missing).

        The matrix may have zero columns when nothing was found.
        """
        ...

    def put_embeddings(self, encoder_id: str, prompt_sha256: Sequence[str], vectors: F32) -> int:
        """Store vectors (one row per key); returns how many were new."""
        ...
