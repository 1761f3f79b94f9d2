"""Run a predictor bundle: NumPy forward pass, calibration, quantile forecasts.

This is the light inference module of the hot path: it needs NumPy (and, for
token-based text features, ``tokenizers``; for the ``encoder`` text variant, torch).
It never imports the training stack. Training uses :meth:`Predictor.inputs` to
build its design matrix, so what a model is trained on and what it is served are
computed by the same code.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from core.forecast import QuantileForecast
from core.predictor._numeric import numeric_matrix
from core.predictor._scalar import SCALAR_FEATURES, numeric_row
from core.predictor._spec import PredictorSpec, TextSpec
from core.predictor._text import HashedNgrams, SentenceEncoder, TextFeaturizer, TokenTable

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
Columns = Mapping[str, Any]

SPEC_FILE, ARRAYS_FILE, TOKENIZER_FILE = "spec.json", "arrays.npz", "tokenizer.json"
NO_CLASS = "none"


def softplus(x: F64) -> F64:
    """Numerically stable log(1 + e^x)."""
    return np.logaddexp(0.0, x)


def quantile_head(raw: F64) -> F64:
    """Non-crossing quantiles: first output is the lowest, the rest softplus increments."""
    out = np.empty_like(raw)
    out[:, 0] = raw[:, 0]
    out[:, 1:] = raw[:, :1] + np.cumsum(softplus(raw[:, 1:]), axis=1)
    return out


def text_featurizer(
    spec: TextSpec, table: F32 | None = None, tokenizer_json: str | None = None
) -> TextFeaturizer | None:
    """Build the featurizer a text spec names (``None`` for ``kind='none'``)."""
    if spec.kind == "none":
        return None
    if spec.kind == "hashed_ngrams":
        return HashedNgrams(spec.buckets, spec.ngram_max, max_words=spec.max_tokens)
    if spec.kind == "static_table":
        if table is None or tokenizer_json is None:
            raise ValueError("static_table text features need a table and a tokenizer")
        return TokenTable(table, tokenizer_json, spec.max_tokens)
    return SentenceEncoder(spec.encoder_layers, spec.max_tokens)


class Predictor:
    """A trained quantile predictor, ready to serve.

    Args:
        spec: The bundle's specification.
        arrays: Weights and statistics (see ``docs/predictors.md`` for the keys).
        tokenizer_json: Tokenizer for ``static_table`` text features.
    """

    def __init__(
        self,
        spec: PredictorSpec,
        arrays: Mapping[str, npt.NDArray[Any]],
        tokenizer_json: str | None = None,
    ) -> None:
        self.spec = spec
        self.arrays = {k: np.asarray(v) for k, v in arrays.items()}
        self.tokenizer_json = tokenizer_json
        a = self.arrays
        # The network runs in float32, as it was trained: half the memory traffic of
        # float64 (the weights of a cross-fitted ensemble do not stay in a busy core's
        # cache between requests) and twice the BLAS speed; outputs differ by ~1e-7.
        self._layers = [
            (a[f"layer{i}_W"].astype(np.float32), a[f"layer{i}_b"].astype(np.float32))
            for i in range(len(spec.hidden))
        ] + [(a["head_W"].astype(np.float32), a["head_b"].astype(np.float32))]
        projected_table = spec.text.kind == "static_table"
        self._text = text_featurizer(
            spec.text, a.get("text_table") if projected_table else None, tokenizer_json
        )
        self._group_index = {g: i for i, g in enumerate(spec.calibration_groups)}

    # --- persistence ---------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write the bundle directory (spec, arrays, tokenizer); returns its path."""
        out = Path(path)
        out.mkdir(parents=True, exist_ok=True)
        (out / SPEC_FILE).write_text(self.spec.model_dump_json(indent=2))
        np.savez(out / ARRAYS_FILE, **self.arrays)  # type: ignore[arg-type]
        if self.tokenizer_json is not None:
            (out / TOKENIZER_FILE).write_text(self.tokenizer_json)
        return out

    @classmethod
    def load(cls, path: str | Path) -> Predictor:
        """Load a bundle directory written by :meth:`save`."""
        root = Path(path)
        spec = PredictorSpec.model_validate(json.loads((root / SPEC_FILE).read_text()))
        with np.load(root / ARRAYS_FILE, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
        tok = root / TOKENIZER_FILE
        return cls(spec, arrays, tok.read_text() if tok.exists() else None)

    # --- features ------------------------------------------------------------------
    def tabular(self, cols: Columns, n: int) -> F64:
        """Standardized numeric features (NaN imputed as the training mean) + one-hots."""
        return tabular_matrix(self.spec, self.arrays["num_mean"], self.arrays["num_std"], cols, n)

    def projected_text(self, cols: Columns, n: int) -> F64:
        """Text features after the learned projection, shape ``(n, projection)``.

        A ``projected_text`` column (rows computed earlier by this method, e.g. by a
        serving cache keyed by prompt) is used as is.
        """
        cached = cols.get("projected_text")
        if cached is not None:
            return np.asarray(cached, dtype=np.float64).reshape(n, -1)
        if self._text is None or self.spec.projection == 0:
            return np.zeros((n, 0))
        prompts = cols.get("prompt")
        texts: list[str | None] = [None] * n if prompts is None else list(prompts)
        # Featurize each distinct prompt once (a batch often repeats one prompt).
        slot: dict[str, int] = {}
        index = np.array(
            [slot.setdefault(t, len(slot)) if t else -1 for t in texts], dtype=np.int64
        )
        has = index >= 0
        unique = self._text.transform(list(slot)).astype(np.float64)
        raw = np.zeros((n, unique.shape[1]))
        raw[has] = unique[index[has]]
        if self.spec.text.kind == "static_table":  # table rows are already projected
            out = np.asarray(raw + self.arrays["text_b"], dtype=np.float64)
        else:
            out = np.asarray(raw @ self.arrays["text_W"] + self.arrays["text_b"], dtype=np.float64)
        out[~has] = 0.0  # no prompt: no text signal (the model saw the same in training)
        return out

    def inputs(self, cols: Columns, n: int) -> tuple[F64, F64]:
        """The (tabular, projected text) inputs of the network for ``n`` requests."""
        return self.tabular(cols, n), self.projected_text(cols, n)

    # --- prediction ----------------------------------------------------------------
    def prompt_classes(self, cols: Columns, n: int, text: F64 | None = None) -> list[str]:
        """Prompt class of each request: the client's label, else the nearest centroid."""
        given = cols.get("prompt_class")
        centroids = self.arrays.get("class_centroids")
        learned = [NO_CLASS] * n
        if centroids is not None and len(centroids) and self.spec.projection:
            t = self.projected_text(cols, n) if text is None else text
            d = ((t[:, None, :] - centroids[None, :, :]) ** 2).sum(axis=2)
            prompts = cols.get("prompt")
            learned = [
                f"c{j}" if prompts is not None and prompts[i] else NO_CLASS
                for i, j in enumerate(np.argmin(d, axis=1))
            ]
        if given is None:
            return learned
        return [str(g) if g else c for g, c in zip(given, learned, strict=True)]

    def predict_transformed(self, cols: Columns, n: int | None = None) -> F64:
        """Calibrated quantiles in the transformed (log) space, shape ``(n, K)``."""
        return self._run(cols, _length(cols) if n is None else n)[0]

    def _run(self, cols: Columns, n: int) -> tuple[F64, list[str]]:
        """Transformed quantiles and prompt classes, text featurized once."""
        tab, text = self.inputs(cols, n)
        q = self._forward(np.concatenate([tab, text], axis=1))
        classes = self.prompt_classes(cols, n, text)
        offsets = self.arrays.get("cal_offsets")
        if offsets is not None:
            q = np.maximum.accumulate(q + offsets[self._groups(cols, n, classes)], axis=1)
        return q, classes

    def _forward(self, h: F64) -> F64:
        """Uncalibrated transformed quantiles (n, K) of network inputs ``h``.

        The layers run in float32; the quantile head (a cumulative sum) in float64.
        """
        m = self.spec.members
        x = h.astype(np.float32)
        if m == 1:
            for w, b in self._layers[:-1]:
                x = np.maximum(x @ w + b, 0.0)
            w, b = self._layers[-1]
            return quantile_head((x @ w + b).astype(np.float64))
        w, b = self._layers[0]  # shared input -> every member's block, side by side
        n = x.shape[0]
        z = (x @ w + b).reshape(n, m, -1).transpose(1, 0, 2)  # (members, n, width)
        for w, b in self._layers[1:]:
            z = np.maximum(z, 0.0) @ w + b[:, None, :]
        k = z.shape[2]
        raw = z.reshape(m * n, k).astype(np.float64)
        q: F64 = quantile_head(raw).reshape(m, n, k).mean(axis=0)
        return q

    def _groups(self, cols: Columns, n: int, classes: list[str]) -> npt.NDArray[np.int64]:
        if len(self._group_index) == 1:
            return np.zeros(n, dtype=np.int64)
        if self.spec.calibration_by == "served_model":
            models = cols.get("served_model")
            models = [None] * n if models is None else models
            return np.array(
                [self._group_index.get(f"model:{m}", 0) for m in models], dtype=np.int64
            )
        devices = cols.get("device")
        devices = [None] * n if devices is None else devices
        index = self._group_index
        return np.array(
            [
                index.get(f"{c}|{d}") or index.get(f"{c}|*", 0)
                for c, d in zip(classes, devices, strict=True)
            ],
            dtype=np.int64,
        )

    def _untransform(self, q: F64) -> F64:
        return np.exp(q) if self.spec.target_transform == "log" else np.expm1(q)

    def predict(self, cols: Columns, n: int | None = None) -> F64:
        """Calibrated quantiles in target units (e.g. seconds), shape ``(n, K)``."""
        return self._untransform(self.predict_transformed(cols, n))

    def predict_with_classes(self, cols: Columns, n: int | None = None) -> tuple[F64, list[str]]:
        """:meth:`predict` and :meth:`prompt_classes` together (text featurized once)."""
        q, classes = self._run(cols, _length(cols) if n is None else n)
        return self._untransform(q), classes

    def forecasts(self, cols: Columns, n: int | None = None) -> list[QuantileForecast]:
        """One :class:`QuantileForecast` per request (support bounded below by 0)."""
        values = np.maximum(self.predict(cols, n), 0.0)
        return [
            QuantileForecast(levels=self.spec.levels, values=tuple(row), lower=0.0)
            for row in values.tolist()
        ]


def _onehot(values: Sequence[Any] | None, vocabulary: Sequence[str], n: int) -> F64:
    index = {v: i for i, v in enumerate(vocabulary)}
    out = np.zeros((n, len(index)))
    if values is not None and index:
        for row, value in enumerate(values):
            j = index.get(str(value))
            if j is not None:
                out[row, j] = 1.0
    return out


def tabular_matrix(spec: PredictorSpec, num_mean: F64, num_std: F64, cols: Columns, n: int) -> F64:
    """The non-text network input: standardized numeric features + device/model one-hots.

    Missing numeric values become 0 after standardization (the training mean); the
    ``has_*`` features carry the missingness. Unknown devices and served models get
    all-zero one-hots (their spec features still describe them).
    """
    if n == 1 and all(name in SCALAR_FEATURES for name in spec.numeric):
        # One request (the hot path): Python floats, not a hundred 1-element arrays.
        row = {k: v[0] for k, v in cols.items() if v is not None}
        x = np.array([numeric_row(row, spec.numeric)], dtype=np.float64).reshape(1, -1)
    else:
        x = numeric_matrix(cols, spec.numeric, n)
    x = (x - num_mean) / num_std
    x = np.where(np.isfinite(x), x, 0.0)  # NaN and +-inf -> 0 (np.nan_to_num, cheaper)
    return np.concatenate(
        [
            x,
            _onehot(cols.get("device"), spec.devices, n),
            _onehot(cols.get("served_model"), spec.served_models, n),
        ],
        axis=1,
    )


def _length(cols: Columns) -> int:
    for value in cols.values():
        if value is not None:
            return len(value)
    raise ValueError("no columns given")
