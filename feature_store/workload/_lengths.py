"""Token lengths: calls per workflow, attached context, output and prompt lengths.

* Calls per workflow: ``round(LogNormal(ln steps_median, steps_sigma))`` in
  ``[1, steps_max]``.
* Attached context (document, passage, code, tool output), tokens:
  ``LogNormal(ln context_median, context_sigma)``; none when the median is 0.
* Output tokens: ``output_median x text_factor x (context / context_median) **
  context_elasticity x LogNormal(0, output_sigma) x tail``, where ``tail`` is
  ``Pareto(tail_alpha)`` (minimum 1) with probability ``tail_probability``, else 1;
  rounded and clipped to ``[1, max_output_tokens]``.
* Input tokens: ``system + history + text + context`` where ``history`` is the sum of
  the earlier calls' ``text + context + output`` of the same workflow for classes
  that accumulate (chat turns, agent trajectories), else 0; capped at the model's
  context window. The cacheable prefix is ``system + history``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from feature_store.workload._classes import PromptClass

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class ClassTable:
    """Per-class numeric parameters as arrays indexed by class (see PromptClass)."""

    share: FloatArray
    items_exponent: FloatArray
    output_median: FloatArray
    output_sigma: FloatArray
    tail_probability: FloatArray
    tail_alpha: FloatArray
    system_tokens: IntArray
    context_median: FloatArray
    context_sigma: FloatArray
    context_elasticity: FloatArray
    accumulates: npt.NDArray[np.bool_]
    steps_median: FloatArray
    steps_sigma: FloatArray
    steps_max: IntArray
    gap_median_s: FloatArray
    gap_sigma: FloatArray

    @classmethod
    def of(cls, classes: Sequence[PromptClass]) -> ClassTable:
        """Stack the classes' parameters.

        Args:
            classes: The prompt classes, in class-index order.

        Returns:
            The table.
        """

        def col(attr: str) -> FloatArray:
            return np.array([getattr(c, attr) for c in classes], dtype=np.float64)

        def ints(attr: str) -> IntArray:
            return np.array([getattr(c, attr) for c in classes], dtype=np.int64)

        return cls(
            share=col("share"),
            items_exponent=col("items_exponent"),
            output_median=col("output_median_tokens"),
            output_sigma=col("output_sigma"),
            tail_probability=col("tail_probability"),
            tail_alpha=col("tail_alpha"),
            system_tokens=ints("system_tokens"),
            context_median=col("context_median_tokens"),
            context_sigma=col("context_sigma"),
            context_elasticity=col("context_elasticity"),
            accumulates=np.array([c.accumulates for c in classes], dtype=np.bool_),
            steps_median=col("steps_median"),
            steps_sigma=col("steps_sigma"),
            steps_max=ints("steps_max"),
            gap_median_s=col("gap_median_s"),
            gap_sigma=col("gap_sigma"),
        )


def _lognormal(median: FloatArray, sigma: FloatArray, rng: np.random.Generator) -> FloatArray:
    return np.asarray(median * np.exp(sigma * rng.standard_normal(len(median))), np.float64)


def steps_per_workflow(table: ClassTable, cls: IntArray, rng: np.random.Generator) -> IntArray:
    """Calls in each workflow.

    Args:
        table: Class parameters.
        cls: Class index per workflow.
        rng: Random source.

    Returns:
        Calls per workflow, in ``[1, steps_max]``.
    """
    k = np.rint(_lognormal(table.steps_median[cls], table.steps_sigma[cls], rng))
    return np.clip(k, 1, table.steps_max[cls]).astype(np.int64)


def context_tokens(table: ClassTable, cls: IntArray, rng: np.random.Generator) -> IntArray:
    """Attached context per call (0 for classes without one), tokens.

    Args:
        table: Class parameters.
        cls: Class index per call.
        rng: Random source.

    Returns:
        Context tokens per call.
    """
    ctx = _lognormal(table.context_median[cls], table.context_sigma[cls], rng)
    return np.rint(ctx).astype(np.int64)


def output_tokens(
    table: ClassTable,
    cls: IntArray,
    text_factor: FloatArray,
    context: IntArray,
    max_output_tokens: int,
    rng: np.random.Generator,
) -> IntArray:
    """Generated tokens per call (heavy-tailed; see the module docstring).

    Args:
        table: Class parameters.
        cls: Class index per call.
        text_factor: Output-length multiplier implied by the prompt wording.
        context: Attached context per call, tokens.
        max_output_tokens: Cap, tokens.
        rng: Random source.

    Returns:
        Output tokens per call, in ``[1, max_output_tokens]``.
    """
    median = table.context_median[cls]
    ratio = np.where(median > 0, context / np.where(median > 0, median, 1.0), 1.0)
    ctx_factor = np.maximum(ratio, 1e-3) ** table.context_elasticity[cls]
    body = _lognormal(
        table.output_median[cls] * text_factor * ctx_factor, table.output_sigma[cls], rng
    )
    in_tail = rng.random(len(cls)) < table.tail_probability[cls]
    tail = np.where(in_tail, 1.0 + rng.pareto(table.tail_alpha[cls]), 1.0)
    return np.clip(np.rint(body * tail), 1, max_output_tokens).astype(np.int64)


def prompt_tokens(
    table: ClassTable,
    cls: IntArray,
    workflow: IntArray,
    first: IntArray,
    text: IntArray,
    context: IntArray,
    output: IntArray,
    window: IntArray,
) -> tuple[IntArray, IntArray]:
    """Input tokens and cacheable prefix of every call.

    Args:
        table: Class parameters.
        cls: Class index per call.
        workflow: Workflow index per call; calls are grouped by workflow, in step order.
        first: Index of the first call of each workflow.
        text: Prompt-text tokens per call.
        context: Attached context per call, tokens.
        output: Output tokens per call.
        window: Context window of the serving model per call, tokens.

    Returns:
        ``(input_tokens, prefix_tokens)``; the prefix never exceeds the input.
    """
    per_call = text + context + output
    before = np.cumsum(per_call) - per_call  # exclusive running sum over all calls
    history = np.where(table.accumulates[cls], before - before[first[workflow]], 0)
    prefix = table.system_tokens[cls] + history
    inputs = np.minimum(prefix + text + context, window)
    return inputs.astype(np.int64), np.minimum(prefix, inputs).astype(np.int64)
