"""Prompt classes and split-conformal calibration of a trained predictor.

Prompt classes are k-means clusters of the predictor's projected text features
(the representation the model learned for the target), stored as centroids.

Calibration is conformalized quantile regression, one level at a time, in the
transformed (log) space: on a calibration fold with scores ``s = y - q_k`` the
offset for level ``tau_k`` is the ``tau_k`` empirical quantile of ``s`` (with the
finite-sample correction ``ceil((n + 1) tau) / n`` above the median, ``floor``
below), so that ``P(y <= q_k + offset) ~= tau_k`` on exchangeable data. A
(prompt class, device) group with at least ``min_group`` calibration rows gets its
own offsets; a request of a smaller group uses its prompt class's offsets (over every
device, when the class has ``min_group`` rows), else the global ones: a rare device's
summaries are calibrated as summaries, not as the average request. With ``by="served_model"`` the
groups are served models instead (one pooled predictor over many models).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import numpy.typing as npt

from core.predictor import NO_CLASS, Predictor
from training._data import I64, TrainingData
from training._fit_steps import transform_target

F64 = npt.NDArray[np.float64]


def kmeans(x: F64, k: int, seed: int = 0, iterations: int = 30) -> F64:
    """Centroids of ``k`` clusters (k-means++ start, Lloyd iterations).

    >>> pts = np.array([[0.0], [0.1], [10.0], [10.2]])
    >>> np.sort(kmeans(pts, 2).ravel()).round(2).tolist()
    [0.05, 10.1]
    """
    rng = np.random.default_rng(seed)
    k = min(k, len(x))
    centroids = [x[rng.integers(len(x))]]
    for _ in range(1, k):
        d = np.min(((x[:, None, :] - np.array(centroids)[None]) ** 2).sum(2), axis=1)
        p = d / d.sum() if d.sum() > 0 else np.full(len(x), 1 / len(x))
        centroids.append(x[rng.choice(len(x), p=p)])
    c = np.array(centroids)
    for _ in range(iterations):
        labels = np.argmin(((x[:, None, :] - c[None]) ** 2).sum(2), axis=1)
        new = np.array([x[labels == j].mean(0) if np.any(labels == j) else c[j] for j in range(k)])
        if np.allclose(new, c):
            break
        c = new
    return c


def conformal_offsets(scores: F64, levels: tuple[float, ...]) -> F64:
    """Per-level offsets from calibration scores ``y - q`` of shape (n, K)."""
    n = len(scores)
    out = np.empty(len(levels))
    for k, tau in enumerate(levels):
        rank = np.ceil((n + 1) * tau) / n if tau >= 0.5 else np.floor((n + 1) * tau) / n
        out[k] = np.quantile(scores[:, k], float(np.clip(rank, 0.0, 1.0)), method="linear")
    return out


def calibrate(
    predictor: Predictor,
    data: TrainingData,
    cal: I64,
    *,
    prompt_classes: int = 4,
    min_group: int = 200,
    seed: int = 0,
    train: I64 | None = None,
    by: Literal["class_device", "served_model"] = "class_device",
    quantiles: F64 | None = None,
) -> Predictor:
    """Return a copy of ``predictor`` with prompt classes and conformal offsets.

    Args:
        predictor: An uncalibrated predictor.
        data: All rows.
        cal: Calibration rows (never used for fitting the network).
        prompt_classes: Clusters of projected text (0: none, or no text features).
        min_group: Calibration rows a (class, device) group needs for its own offsets.
        seed: k-means seed.
        train: Rows to cluster (default: the calibration rows).
        by: Calibration groups: (prompt class, device) or served model.
        quantiles: Transformed quantiles of the ``cal`` rows, shape ``(len(cal), K)``,
            from models that never trained on them (e.g. a cross-fit's out-of-fold
            predictions); default: ``predictor``'s own (``cal`` must then be unseen).
    """
    spec, arrays = predictor.spec, dict(predictor.arrays)
    arrays.pop("cal_offsets", None)
    arrays.pop("class_centroids", None)
    if prompt_classes > 0 and spec.projection > 0:
        rows = train if train is not None else cal
        cols = data.rows(rows)
        text = predictor.projected_text(cols, len(rows))
        prompts = cols.get("prompt")
        has = (
            np.array([bool(p) for p in prompts])
            if prompts is not None
            else np.zeros(len(rows), bool)
        )
        if has.sum() >= prompt_classes:
            arrays["class_centroids"] = kmeans(text[has], prompt_classes, seed)
    base = Predictor(
        spec.model_copy(update={"calibration_groups": ("*",), "calibration_by": by}),
        arrays,
        predictor.tokenizer_json,
    )
    cal_cols = data.rows(cal)
    q = base.predict_transformed(cal_cols, len(cal)) if quantiles is None else quantiles
    y = transform_target(data.y[cal], spec.target_transform)
    scores = y[:, None] - q
    classes = base.prompt_classes(cal_cols, len(cal))
    if by == "served_model":
        keys = np.array([f"model:{m}" for m in cal_cols["served_model"]])
    else:
        keys = np.array([f"{c}|{d}" for c, d in zip(classes, cal_cols["device"], strict=True)])
    groups: list[str] = ["*"]
    offsets: list[F64] = [conformal_offsets(scores, spec.levels)]
    for key in sorted(set(keys.tolist())):
        mask = keys == key
        if mask.sum() >= min_group and not key.startswith(f"{NO_CLASS}|*"):
            groups.append(key)
            offsets.append(conformal_offsets(scores[mask], spec.levels))
    if by == "class_device":
        names = np.asarray(classes)
        for c in sorted(set(classes) - {NO_CLASS}):
            mask = names == c
            if mask.sum() >= min_group:
                groups.append(f"{c}|*")
                offsets.append(conformal_offsets(scores[mask], spec.levels))
    arrays["cal_offsets"] = np.stack(offsets)
    new_spec = spec.model_copy(
        update={
            "calibration_groups": tuple(groups),
            "calibration_by": by,
            "prompt_classes": len(arrays.get("class_centroids", [])),
        }
    )
    return Predictor(new_spec, arrays, predictor.tokenizer_json)
