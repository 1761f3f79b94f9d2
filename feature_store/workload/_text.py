"""Prompt text: templates filled from vocabulary, and its length in tokens.

Token counts follow the common rule of thumb for English text and BPE tokenizers: one
token per 4 characters, ``tokens = ceil(len(text) / chars_per_token)`` (at least 1).

>>> token_count("Translate the following 120-word passage into German.")
14
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from feature_store.workload._catalog import PROGRAMMING_LANGUAGES, SUBJECTS
from feature_store.workload._classes import Choice, PromptClass

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def token_count(text: str, chars_per_token: float = 4.0) -> int:
    """Tokens of ``text``: ``ceil(len(text) / chars_per_token)``, at least 1.

    Args:
        text: Prompt text.
        chars_per_token: Characters per token.

    Returns:
        The token count.
    """
    return max(1, math.ceil(len(text) / chars_per_token))


def token_counts(texts: Sequence[str], chars_per_token: float) -> IntArray:
    """Vectorized :func:`token_count`.

    Args:
        texts: Prompt texts.
        chars_per_token: Characters per token.

    Returns:
        Token count per text.
    """
    chars = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
    return np.maximum(np.ceil(chars / chars_per_token), 1).astype(np.int64)


@dataclass(frozen=True, slots=True)
class TextChoices:
    """The fillers drawn for every request; indexes are global over all classes.

    Attributes:
        template: Global template index.
        topic: Global topic index.
        subject: Index into the neutral subjects.
        plang: Index into the programming languages.
        modifier: Modifier index, or -1 for none.
        n: Requested item count.
        uses_n: Whether the template mentions ``{n}``.
    """

    template: IntArray
    topic: IntArray
    subject: IntArray
    plang: IntArray
    modifier: IntArray
    n: IntArray
    uses_n: npt.NDArray[np.bool_]


def _flat(classes: Sequence[PromptClass], attr: str) -> tuple[list[Choice], IntArray, IntArray]:
    """All choices of ``attr`` across classes, with per-class offsets and counts."""
    groups: list[tuple[Choice, ...]] = [getattr(c, attr) for c in classes]
    counts = np.array([len(g) for g in groups], dtype=np.int64)
    return [x for g in groups for x in g], np.cumsum(counts) - counts, counts


def draw_text(
    classes: Sequence[PromptClass],
    class_idx: IntArray,
    modifier_count: int,
    modifier_probability: float,
    max_items: int,
    rng: np.random.Generator,
) -> TextChoices:
    """Draw the fillers of every request, uniformly within each class's vocabulary.

    Args:
        classes: The prompt classes.
        class_idx: Class index per request.
        modifier_count: Number of verbosity modifiers available.
        modifier_probability: Chance of a modifier where the class allows one.
        max_items: Largest requested item count.
        rng: Random source.

    Returns:
        The drawn fillers.
    """
    n_rec = len(class_idx)
    templates, t_off, t_cnt = _flat(classes, "templates")
    _, k_off, k_cnt = _flat(classes, "topics")
    template = t_off[class_idx] + (rng.random(n_rec) * t_cnt[class_idx]).astype(np.int64)
    topic = k_off[class_idx] + (rng.random(n_rec) * k_cnt[class_idx]).astype(np.int64)
    allows = np.array([c.modifiers for c in classes])[class_idx]
    has_mod = allows & (rng.random(n_rec) < modifier_probability)
    modifier = np.where(has_mod, rng.integers(0, modifier_count, n_rec), -1)
    uses_n = np.array(["{n}" in text for text, _ in templates])[template]
    return TextChoices(
        template=template,
        topic=topic,
        subject=rng.integers(0, len(SUBJECTS), n_rec),
        plang=rng.integers(0, len(PROGRAMMING_LANGUAGES), n_rec),
        modifier=modifier.astype(np.int64),
        n=rng.integers(2, max_items + 1, n_rec),
        uses_n=uses_n,
    )


def text_factor(
    classes: Sequence[PromptClass],
    choices: TextChoices,
    modifiers: Sequence[Choice],
    items_exponent: FloatArray,
) -> FloatArray:
    """Output-length multiplier implied by the wording of each prompt.

    Args:
        classes: The prompt classes.
        choices: The drawn fillers.
        modifiers: Verbosity modifiers and their factors.
        items_exponent: Per-request elasticity to ``{n}`` (the class's).

    Returns:
        template x topic x modifier x ``(n / 4) ** items_exponent`` (when used).
    """
    t_factor = np.array([f for _, f in _flat(classes, "templates")[0]])
    k_factor = np.array([f for _, f in _flat(classes, "topics")[0]])
    m_factor = np.array([f for _, f in modifiers] + [1.0])  # index -1: no modifier
    items = np.where(choices.uses_n, (choices.n / 4.0) ** items_exponent, 1.0)
    return np.asarray(
        t_factor[choices.template] * k_factor[choices.topic] * m_factor[choices.modifier] * items,
        dtype=np.float64,
    )


def render(
    classes: Sequence[PromptClass],
    choices: TextChoices,
    modifiers: Sequence[Choice],
    words: IntArray,
    step: IntArray,
) -> list[str]:
    """Render every prompt.

    Args:
        classes: The prompt classes.
        choices: The drawn fillers.
        modifiers: Verbosity modifiers (text used here).
        words: ``{words}`` value per request (attached context size, words).
        step: 0-based call index per request (rendered 1-based as ``{step}``).

    Returns:
        The prompt texts.
    """
    templates = [t for t, _ in _flat(classes, "templates")[0]]
    topics = [t for t, _ in _flat(classes, "topics")[0]]
    suffixes = [m for m, _ in modifiers] + [""]
    return [
        templates[t].format(
            topic=topics[k],
            subject=SUBJECTS[s],
            plang=PROGRAMMING_LANGUAGES[p],
            n=n,
            words=w,
            step=j + 1,
        )
        + suffixes[m]
        for t, k, s, p, m, n, w, j in zip(
            choices.template.tolist(),
            choices.topic.tolist(),
            choices.subject.tolist(),
            choices.plang.tolist(),
            choices.modifier.tolist(),
            choices.n.tolist(),
            words.tolist(),
            step.tolist(),
            strict=True,
        )
    ]
