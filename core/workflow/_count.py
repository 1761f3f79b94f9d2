"""Call-count distributions from task text: a text-weighted, smoothed empirical law.

The model keeps, for every training task run, its text embedding (unit norm), its
served model and its log call count. For a new task it weights the training runs:
``shrink / n`` each (the empirical distribution, ignoring the text), plus ``1 / k`` for
each of the ``k`` runs with the most similar text, times ``boost`` for runs of the same
served model. The probability of ``N = n`` is the weighted mixture of each run's
*kernel* (a discretized normal bump of width ``bandwidth`` around its log count,
precomputed as the ``(n, M)`` matrix ``kernels``), so the answer is a proper
distribution on ``1 .. M`` that a repeated run of a similar task can move.

Example:
    >>> emb = np.eye(3, dtype=np.float32)
    >>> kernels = np.eye(3)  # run i made i + 1 calls, no smoothing
    >>> m = CallCountModel(emb, kernels, ("a", "a", "b"), k=1, shrink=0.5, boost=1.0)
    >>> m.pmf(np.array([0.0, 1.0, 0.0], dtype=np.float32), "a").round(3).tolist()
    [0.111, 0.778, 0.111]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]


def unit_rows(x: npt.NDArray[np.floating]) -> F32:
    """Rows scaled to unit L2 norm (zero rows stay zero)."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.asarray(x / np.where(norms > 0, norms, 1.0), dtype=np.float32)


class CallCountModel:
    """Text-weighted mixture of the training runs' call-count kernels.

    Args:
        embeddings: Training runs' text embeddings, shape ``(n, d)`` (normalized here).
        kernels: Each run's call-count kernel over ``1 .. M``, shape ``(n, M)``, rows
            summing to 1.
        served_models: Each run's served model, length ``n``.
        k: Nearest runs that get extra weight.
        shrink: Total weight of the text-blind empirical part (relative to 1 for the
            ``k`` neighbours).
        boost: Weight multiplier of runs of the queried served model.
    """

    def __init__(
        self,
        embeddings: npt.NDArray[np.floating],
        kernels: F64,
        served_models: Sequence[str],
        *,
        k: int = 10,
        shrink: float = 0.5,
        boost: float = 2.0,
    ) -> None:
        if len(served_models) != embeddings.shape[0] or kernels.shape[0] != embeddings.shape[0]:
            raise ValueError("embeddings, kernels and served models must have one row per run")
        self.embeddings = unit_rows(embeddings)
        self.kernels = np.asarray(kernels, dtype=np.float64)
        self.served_models = np.asarray(list(served_models), dtype=object)
        self.k = min(k, embeddings.shape[0])
        self.shrink = shrink
        self.boost = boost

    @property
    def max_calls(self) -> int:
        """Largest call count with probability (``M``)."""
        return int(self.kernels.shape[1])

    def weights(
        self,
        embedding: npt.NDArray[np.floating],
        served_model: str | None,
        exclude: npt.NDArray[np.bool_] | None = None,
    ) -> F64:
        """Weight of each training run for one task, shape ``(n,)``, summing to 1.

        Args:
            embedding: The task's text embedding, shape ``(d,)``.
            served_model: Its served model (``None``: no boost).
            exclude: Training runs to leave out (e.g. runs of the same task instance
                when a training task is scored as if held out), shape ``(n,)``.
        """
        n = self.embeddings.shape[0]
        keep = np.ones(n, dtype=bool) if exclude is None else ~np.asarray(exclude, dtype=bool)
        if not keep.any():
            raise ValueError("every training run is excluded")
        w = np.where(keep, self.shrink / int(keep.sum()), 0.0)
        query = unit_rows(np.asarray(embedding).reshape(1, -1))[0]
        k = min(self.k, int(keep.sum()))
        if np.any(query):
            similarity = np.where(keep, self.embeddings @ query, -np.inf)
            nearest = np.argpartition(-similarity, k - 1)[:k]
            w[nearest] += 1.0 / k
        if served_model is not None:
            w = w * np.where(self.served_models == served_model, self.boost, 1.0)
        return np.asarray(w / w.sum(), dtype=np.float64)

    def pmf(
        self,
        embedding: npt.NDArray[np.floating],
        served_model: str | None = None,
        exclude: npt.NDArray[np.bool_] | None = None,
    ) -> F64:
        """``P(N = n)`` for ``n = 1 .. M``, shape ``(M,)`` (``exclude``: see :meth:`weights`)."""
        p = self.weights(embedding, served_model, exclude) @ self.kernels
        return np.asarray(p / p.sum(), dtype=np.float64)

    def cdf(
        self,
        embedding: npt.NDArray[np.floating],
        served_model: str | None = None,
        exclude: npt.NDArray[np.bool_] | None = None,
    ) -> F64:
        """``P(N <= n)`` for ``n = 1 .. M``, ending exactly at 1 (``exclude``: :meth:`weights`)."""
        c = np.cumsum(self.pmf(embedding, served_model, exclude))
        c[-1] = 1.0
        return np.asarray(np.minimum(c, 1.0), dtype=np.float64)
