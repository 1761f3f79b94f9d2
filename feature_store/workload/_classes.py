"""Prompt classes: how the requests of one kind are worded, how long they are, how they chain.

A class renders prompt text from ``templates`` (``str.format`` strings) filled with
slots drawn per request:

* ``{topic}``: one of the class's ``topics``, each with an output-length factor;
* ``{subject}``, ``{plang}``: neutral vocabulary (no effect on lengths);
* ``{n}``: a requested item count; output scales as ``(n / 4) ** items_exponent``;
* ``{words}``: the size of the attached context (document, passage) in words;
* ``{step}``: the 1-based call index in the workflow.

Each template also carries a length factor, and a verbosity modifier (``Answer
briefly.``, ``Explain in detail.``, see :data:`~feature_store.workload.DEFAULT_MODIFIERS`)
may be appended. So the text, not only the class, predicts the output length.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator

Choice = tuple[str, Annotated[float, Field(gt=0, allow_inf_nan=False)]]
"""A text fragment and its multiplicative effect on the output length."""

SLOTS = ("topic", "subject", "plang", "n", "words", "step")
"""Names a template may use."""

Positive = Annotated[float, Field(gt=0, allow_inf_nan=False)]
Sigma = Annotated[float, Field(ge=0, le=3)]


class PromptClass(BaseModel):
    """One kind of request.

    Attributes:
        name: The ``prompt_class`` value written to the records.
        share: Relative share of *workflows* of this class (not of records).
        templates: Prompt templates and their output-length factors.
        topics: ``{topic}`` fillers and their output-length factors.
        modifiers: Whether a verbosity modifier may be appended.
        items_exponent: Output-length elasticity to ``{n}`` when the template uses it.
        output_median_tokens: Median output length with all factors at 1, tokens.
        output_sigma: Log-normal sigma of the output length.
        tail_probability: Chance the output is multiplied by a Pareto draw.
        tail_alpha: Pareto shape of that tail (smaller = heavier).
        system_tokens: System prompt length, tokens (shared, so cacheable).
        context_median_tokens: Median attached context (document, passage, tool
            output) per call, tokens; 0 for none.
        context_sigma: Log-normal sigma of the attached context.
        context_elasticity: Output length scales as ``(context / median) ** this``.
        accumulates: Whether each call's prompt carries the previous calls' prompts and
            outputs (chat turns, agent trajectories).
        steps_median: Median calls per workflow.
        steps_sigma: Log-normal sigma of calls per workflow.
        steps_max: Most calls per workflow.
        gap_median_s: Median gap between a call's completion and the next submission
            (tool run time, user think time), seconds.
        gap_sigma: Log-normal sigma of that gap.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: Annotated[str, Field(min_length=1, max_length=128)]
    share: Positive
    templates: Annotated[tuple[Choice, ...], Field(min_length=1)]
    topics: Annotated[tuple[Choice, ...], Field(min_length=1)]
    modifiers: bool = True
    items_exponent: Annotated[float, Field(ge=0, le=2)] = 0.5
    output_median_tokens: Positive
    output_sigma: Sigma = 0.6
    tail_probability: Annotated[float, Field(ge=0, le=1)] = 0.03
    tail_alpha: Annotated[float, Field(gt=0.5, le=10)] = 1.5
    system_tokens: Annotated[int, Field(ge=0)] = 0
    context_median_tokens: Annotated[float, Field(ge=0)] = 0.0
    context_sigma: Sigma = 0.8
    context_elasticity: Annotated[float, Field(ge=0, le=2)] = 0.0
    accumulates: bool = False
    steps_median: Annotated[float, Field(ge=1)] = 1.0
    steps_sigma: Sigma = 0.0
    steps_max: Annotated[int, Field(ge=1, le=1000)] = 1
    gap_median_s: Positive = 10.0
    gap_sigma: Sigma = 1.0

    @field_validator("templates")
    @classmethod
    def _known_slots(cls, templates: tuple[Choice, ...]) -> tuple[Choice, ...]:
        for text, _ in templates:
            try:
                text.format(**dict.fromkeys(SLOTS, ""))
            except (KeyError, IndexError, ValueError) as exc:
                raise ValueError(f"template {text!r} uses an unknown slot: {exc}") from exc
        return templates
