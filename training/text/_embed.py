"""Raw (unprojected) text features of training prompts, computed once per prompt.

:class:`TextFeatures` builds the same featurizer the serving runtime builds from a
:class:`core.predictor.TextSpec` (through :func:`core.predictor.text_featurizer`), so
training and serving compute identical features, except that for ``static_table``
training sees the raw 384-d distilled table (the bundle later stores it multiplied by
the learned projection).

>>> from core.predictor import TextSpec
>>> tf = TextFeatures(TextSpec(kind="hashed_ngrams", buckets=32))
>>> tf.transform(["fix the test", None, "fix the test"]).shape
(3, 32)
>>> tf.stats.computed, tf.stats.duplicates
(1, 1)
>>> TextFeatures(TextSpec()).transform(["anything"]).shape
(1, 0)
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from core.predictor import TextFeaturizer, TextSpec, text_featurizer
from training.text._static_table import load_or_build_static_table
from training.text._types import F32, EmbeddingCache, Progress

STAGE = "text features"
ENCODER_DIM = 384


def prompt_sha256(text: str) -> str:
    """The feature store's prompt key: SHA-256 hex digest of the UTF-8 text."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def raw_dim(spec: TextSpec) -> int:
    """Width of the raw text features of ``spec`` (before any projection)."""
    if spec.kind == "none":
        return 0
    if spec.kind == "hashed_ngrams":
        return spec.buckets
    return ENCODER_DIM


@dataclass
class TextFeatureStats:
    """Counters over every :meth:`TextFeatures.transform` call of one instance.

    Attributes:
        computed: Distinct prompts run through the featurizer.
        cached: Distinct prompts whose vectors came from the embedding cache.
        duplicates: Prompts that repeated an earlier prompt of the same call.
        stored: Vectors newly written to the embedding cache.
    """

    computed: int = 0
    cached: int = 0
    duplicates: int = 0
    stored: int = 0


class TextFeatures:
    """Featurize training prompts for one text variant.

    Args:
        spec: The text variant (``spec.dim``, if set, must match the raw width).
        cache: Embedding cache for the ``encoder`` variant (e.g. the feature store),
            keyed by ``spec.cache_id``; other variants are cheap and never cached.
        table_dir: Cache directory of distilled tables for ``static_table`` (default
            :func:`training.text.default_table_dir`); the table is distilled from the
            encoder truncated to ``spec.encoder_layers`` layers.
        progress: ``progress(stage, done, total)`` after each chunk (and while a
            missing static table is being built).
        chunk_size: Prompts featurized (and cached) per step.
    """

    def __init__(
        self,
        spec: TextSpec,
        *,
        cache: EmbeddingCache | None = None,
        table_dir: str | Path | None = None,
        progress: Progress | None = None,
        chunk_size: int = 256,
    ) -> None:
        self.spec = spec
        self.dim = raw_dim(spec)
        if spec.dim not in (0, self.dim):
            raise ValueError(f"spec.dim={spec.dim} but {spec.kind} features are {self.dim} wide")
        self.cache = cache if spec.kind == "encoder" else None
        self.table_dir = table_dir
        self.progress = progress
        self.chunk_size = max(1, chunk_size)
        self.stats = TextFeatureStats()
        self._featurizer: TextFeaturizer | None = None
        self._table: tuple[F32, str] | None = None

    def static_table(self) -> tuple[F32, str]:
        """The raw distilled table and tokenizer JSON (``static_table`` only).

        Training multiplies the table by the learned projection before it goes into
        the bundle, with the tokenizer JSON next to it.
        """
        if self.spec.kind != "static_table":
            raise ValueError(f"{self.spec.kind} text features have no static table")
        if self._table is None:
            self._table = load_or_build_static_table(
                self.table_dir, self.spec.encoder_layers, progress=self.progress
            )
        return self._table

    def featurizer(self) -> TextFeaturizer | None:
        """The inference featurizer (built on first use; ``None`` for ``none``)."""
        if self._featurizer is None and self.spec.kind != "none":
            table, tok = self.static_table() if self.spec.kind == "static_table" else (None, None)
            self._featurizer = text_featurizer(self.spec, table, tok)
        return self._featurizer

    def transform(
        self, prompts: Sequence[str | None], prompt_sha256s: Sequence[str | None] | None = None
    ) -> F32:
        """Raw text features, shape ``(len(prompts), dim)``; empty prompts give zero rows.

        Args:
            prompts: Prompt texts (``None`` or ``""`` for no prompt).
            prompt_sha256s: Their feature-store keys, aligned with ``prompts``; computed
                with :func:`prompt_sha256` where missing.
        """
        n = len(prompts)
        if prompt_sha256s is not None and len(prompt_sha256s) != n:
            raise ValueError(f"{n} prompts but {len(prompt_sha256s)} keys")
        out = np.zeros((n, self.dim), dtype=np.float32)
        if self.dim == 0:
            return out
        # Distinct prompts, by key: first row of each, and the slot of every row.
        keys: list[str] = []
        texts: list[str] = []
        slot_of: dict[str, int] = {}
        rows: list[int] = []
        slots: list[int] = []
        for i, text in enumerate(prompts):
            if not text:
                continue
            given = prompt_sha256s[i] if prompt_sha256s is not None else None
            key = given or prompt_sha256(text)
            slot = slot_of.get(key)
            if slot is None:
                slot = slot_of[key] = len(keys)
                keys.append(key)
                texts.append(text)
            else:
                self.stats.duplicates += 1
            rows.append(i)
            slots.append(slot)
        if not keys:
            return out
        vectors = np.zeros((len(keys), self.dim), dtype=np.float32)
        found = np.zeros(len(keys), dtype=np.bool_)
        if self.cache is not None:
            found, cached = self.cache.get_embeddings(self.spec.cache_id, keys)
            found = np.asarray(found, dtype=np.bool_)
            if found.any():
                if cached.shape != vectors.shape:
                    raise ValueError(
                        f"cached embeddings under {self.spec.cache_id!r} are "
                        f"{cached.shape[1]} wide, expected {self.dim}"
                    )
                vectors[found] = cached[found]
            self.stats.cached += int(found.sum())
        self._compute(texts, keys, np.flatnonzero(~found), vectors)
        out[rows] = vectors[slots]
        return out

    def _compute(
        self, texts: list[str], keys: list[str], todo: npt.NDArray[np.intp], vectors: F32
    ) -> None:
        featurizer = self.featurizer()
        if featurizer is None or len(todo) == 0:
            return
        # Length-sorted chunks pad little in the encoder's batches.
        order = sorted(todo.tolist(), key=lambda j: len(texts[j]))
        total = len(order)
        for start in range(0, total, self.chunk_size):
            chunk = order[start : start + self.chunk_size]
            computed = featurizer.transform([texts[j] for j in chunk])
            vectors[chunk] = computed
            self.stats.computed += len(chunk)
            if self.cache is not None:
                self.stats.stored += self.cache.put_embeddings(
                    self.spec.cache_id, [keys[j] for j in chunk], computed
                )
            if self.progress is not None:
                self.progress(STAGE, start + len(chunk), total)
