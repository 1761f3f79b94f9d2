"""Text features for training: distilled static tables, cached embeddings, hot-path cost.

- :func:`load_or_build_static_table` / :func:`distill_static_table`: the sentence
  encoder distilled into one vector per vocabulary token (built once per machine).
- :class:`TextFeatures`: raw (unprojected) text features of training prompts for a
  :class:`core.predictor.TextSpec`, with encoder embeddings cached per prompt in any
  :class:`EmbeddingCache` (e.g. the feature store).
- :func:`measure_text_cost_us`: what a text variant costs per prompt when served.

Heavy dependencies (torch, transformers) are imported only when an encoder runs.
"""

from training.text._cost import measure_text_cost_us
from training.text._embed import TextFeatures, TextFeatureStats, prompt_sha256, raw_dim
from training.text._static_table import (
    default_table_dir,
    distill_static_table,
    encoder_version_id,
    load_or_build_static_table,
    static_table_path,
    tokenizer_json,
)
from training.text._types import EmbeddingCache, Progress

__all__ = [
    "EmbeddingCache",
    "Progress",
    "TextFeatureStats",
    "TextFeatures",
    "default_table_dir",
    "distill_static_table",
    "encoder_version_id",
    "load_or_build_static_table",
    "measure_text_cost_us",
    "prompt_sha256",
    "raw_dim",
    "static_table_path",
    "tokenizer_json",
]
