"""Training: quantile predictors over prompt semantics, device and runtime features.

Heavy dependencies (torch, Lightning, Optuna, LightGBM, matplotlib) are imported
inside the functions that use them. The result of training is a
:class:`core.predictor.Predictor` bundle that the hot path runs without this package.
"""

from training._calibrate import calibrate, conformal_offsets
from training._data import Split, TrainingData, group_keys, split_by_group
from training._fallback import FALLBACK_KIND, fallback_predictor
from training._fit import TrainConfig, fit_network
from training._pipeline import (
    EVAL_LEVELS,
    TrainOutcome,
    TrainRequest,
    evaluate_models,
    train_predictor,
)
from training._search import SearchResult, SearchSpace, TextProvider, TrialOutcome, provide_text

__all__ = [
    "EVAL_LEVELS",
    "FALLBACK_KIND",
    "SearchResult",
    "SearchSpace",
    "Split",
    "TextProvider",
    "TrainConfig",
    "TrainOutcome",
    "TrainRequest",
    "TrainingData",
    "TrialOutcome",
    "calibrate",
    "conformal_offsets",
    "evaluate_models",
    "fallback_predictor",
    "fit_network",
    "group_keys",
    "provide_text",
    "split_by_group",
    "train_predictor",
]
