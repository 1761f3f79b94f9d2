"""The predictor bundle and its light inference runtime (NumPy; no training stack)."""

from core.predictor._numeric import ALL_FEATURES, FEATURES, REQUEST_FEATURES, numeric_matrix
from core.predictor._runtime import (
    NO_CLASS,
    Predictor,
    quantile_head,
    tabular_matrix,
    text_featurizer,
)
from core.predictor._spec import DEFAULT_LEVELS, PredictorSpec, TextSpec
from core.predictor._text import (
    HashedNgrams,
    SentenceEncoder,
    TextFeaturizer,
    TokenTable,
    encoder_dir,
    load_encoder,
)

__all__ = [
    "ALL_FEATURES",
    "DEFAULT_LEVELS",
    "FEATURES",
    "NO_CLASS",
    "REQUEST_FEATURES",
    "HashedNgrams",
    "Predictor",
    "PredictorSpec",
    "SentenceEncoder",
    "TextFeaturizer",
    "TextSpec",
    "TokenTable",
    "encoder_dir",
    "load_encoder",
    "numeric_matrix",
    "quantile_head",
    "tabular_matrix",
    "text_featurizer",
]
