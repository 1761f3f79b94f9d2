"""Train one served model end to end: split, search, calibrate, evaluate, plot.

Returns everything the registry logs; the caller (``pipelines``) supplies the frame
and the text-feature provider (which may use the feature store's embedding cache).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field

from core.predictor import Predictor
from training import metrics, plots
from training._calibrate import calibrate
from training._cost import batched_throughput, prediction_cost_us
from training._data import I64, Split, TrainingData, group_keys, split_by_group
from training._ensemble import cross_fit
from training._fit import TrainConfig, fit_network
from training._search import (
    SearchResult,
    SearchSpace,
    TextProvider,
    TrialOutcome,
    provide_text,
    run_search,
)
from training.baselines import BASELINES

F64 = npt.NDArray[np.float64]

#: Levels every comparison is reported at.
EVAL_LEVELS: tuple[float, ...] = (0.1, 0.5, 0.9, 0.95, 0.99)


class TrainRequest(BaseModel):
    """What ``tailcast train`` asks for (frozen configuration).

    Attributes:
        served_model: Served model the predictor is for (used in names only).
        target: Record field to predict.
        trials: Optuna trials to run in this process.
        timeout_s: Seconds after which the search starts no new trial.
        storage: Optuna storage URL.
        seed: Seed of the search and of every fit.
        base: Defaults for what the search does not vary. Its ``objective`` is the
            target's units (seconds over the training median) by default: the search
            draws both loss spaces, and one objective space keeps their validation
            losses, the pruner's medians and the selection comparable.
        space: The search space.
        prompt_classes: Prompt-class centroids to learn (0: none).
        min_group: Calibration rows a group needs for its own offsets.
        calibration_by: Calibration groups: (prompt class, device) or served model.
        max_cost_us: Prediction budget per request on one core (µs), text included;
            ``None`` for no budget.
        baselines: Baselines scored on the held-out fold.
        test_fold: Cross-validation: hold out the ``test_fold``-th of ``folds`` slices
            of the task groups (see :func:`training.split_by_group`); ``None``: the
            fixed held-out fold every training and champion comparison uses.
        folds: Number of cross-validation slices.
        cross_fit: Members of the final predictor: the selected configuration refitted
            on every non-test row ``cross_fit`` times, each member holding out one
            slice of the task groups, calibrated on the out-of-fold quantiles and
            served as the members' mean (see ``training._ensemble``; as many members
            as ``max_cost_us`` affords, measured); below 2, the
            selected trial itself, calibrated on the validation and calibration rows.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    served_model: str
    target: str = "latency_s"
    trials: int = Field(default=20, ge=1)
    timeout_s: float | None = 600.0
    storage: str | None = None
    seed: int = 0
    base: TrainConfig = TrainConfig(batch_size=512, max_epochs=40, patience=6, objective="target")
    space: SearchSpace = SearchSpace()
    prompt_classes: int = Field(default=4, ge=0)
    min_group: int = Field(default=200, ge=1)
    calibration_by: Literal["class_device", "served_model"] = "class_device"
    max_cost_us: float | None = Field(default=1000.0, gt=0)
    baselines: tuple[str, ...] = tuple(BASELINES)
    test_fold: int | None = Field(default=None, ge=0)
    folds: int = Field(default=5, ge=2)
    cross_fit: int = Field(default=5, ge=0)


@dataclass
class TrainOutcome:
    """A trained, calibrated predictor with its evaluation."""

    predictor: Predictor
    split: Split
    search: SearchResult
    comparison: dict[str, dict[str, Any]]
    cost_us: float
    throughput_rps: float
    data: TrainingData
    plots: dict[str, Path] = field(default_factory=dict)


def evaluate_models(
    predictor: Predictor,
    data: TrainingData,
    train: I64,
    rows: I64,
    baselines: tuple[str, ...] = tuple(BASELINES),
    eval_data: TrainingData | None = None,
) -> tuple[dict[str, dict[str, Any]], dict[str, F64]]:
    """Score the predictor and the baselines (fitted on ``train``) on held-out rows.

    Args:
        predictor: The calibrated predictor.
        data: Rows the baselines are fitted on (``train`` indexes them).
        train: Training rows of ``data``.
        rows: Rows of ``eval_data`` (default ``data``) to score.
        baselines: Baseline names.
        eval_data: Where the held-out rows come from (e.g. a file not in the store).

    Returns:
        (name -> metrics.score dict at :data:`EVAL_LEVELS`, name -> quantiles (n, 5)).
    """
    target = eval_data if eval_data is not None else data
    held = target.rows(rows)
    y = target.y[rows]
    levels = np.array(EVAL_LEVELS)
    quantiles: dict[str, F64] = {
        "tailcast": metrics.interpolate_quantiles(
            predictor.predict(held, len(rows)), np.array(predictor.spec.levels), levels, lower=0.0
        )
    }
    train_cols = data.rows(train)
    for name in baselines:
        model = BASELINES[name]().fit(train_cols, data.y[train])
        quantiles[name] = model.predict_at(held, EVAL_LEVELS)
    scores = {name: dict(metrics.score(y, q, levels, lower=0.0)) for name, q in quantiles.items()}
    return scores, quantiles


def train_predictor(
    frame: pa.Table,
    request: TrainRequest,
    text_provider: TextProvider,
    out_dir: Path,
    on_trial: Callable[[TrialOutcome | None], None] | None = None,
) -> TrainOutcome:
    """Search, calibrate and evaluate a predictor for one served model.

    Args:
        frame: The training frame (point-in-time correct, see the feature store).
        request: The configuration.
        text_provider: Raw text features per text variant.
        out_dir: Where plots are written.
        on_trial: Progress callback, once per trial.
    """
    base = request.base.model_copy(update={"target": request.target, "seed": request.seed})
    data = TrainingData.from_arrow(
        frame, request.target, strictly_positive=base.target_transform == "log"
    )
    if data.n < 100:
        raise ValueError(f"only {data.n} usable rows for {request.served_model}; need >= 100")
    groups = group_keys(data.cols)
    split = split_by_group(groups, fold=request.test_fold, folds=request.folds)
    search = run_search(
        data,
        _search_split(split, request.cross_fit),
        text_provider,
        base=base,
        space=request.space,
        trials=request.trials,
        timeout=request.timeout_s,
        storage=request.storage,
        study_name=f"tailcast-{request.served_model}-{request.target}",
        seed=request.seed,
        max_cost_us=request.max_cost_us,
        text_cost_us=_text_cost(data, split),
        on_trial=on_trial,
    )
    if search.selected is None:
        raise RuntimeError("no trial finished; raise --trials or --timeout")
    chosen = search.selected
    data.text, table, tokenizer = provide_text(text_provider, chosen.config.text, data)
    predictor = _final_predictor(data, split, groups, chosen, request, table, tokenizer)
    # Baselines fit on the rows the predictor's networks learned from.
    fitted = _search_split(split, request.cross_fit)
    fit_rows = split.train if request.cross_fit < 2 else np.sort(np.r_[fitted.train, fitted.val])
    comparison, quantiles = evaluate_models(
        predictor, data, fit_rows, split.test, baselines=request.baselines
    )
    outcome = TrainOutcome(
        predictor=predictor,
        split=split,
        search=search,
        comparison=comparison,
        cost_us=prediction_cost_us(predictor, data, split.test),
        throughput_rps=batched_throughput(predictor, data, split.test),
        data=data,
    )
    outcome.plots = _plots(outcome, data, quantiles, out_dir)
    return outcome


def _search_split(split: Split, cross_fit: int) -> Split:
    """The folds the search trains and validates on.

    A cross-fitted predictor calibrates on out-of-fold quantiles, so the search
    validates on the calibration fold too: twice the tasks to compare trials on.
    """
    if cross_fit < 2:
        return split
    val = np.sort(np.concatenate([split.val, split.cal]))
    return Split(split.train, val, np.zeros(0, dtype=np.int64), split.test)


def _final_predictor(
    data: TrainingData,
    split: Split,
    groups: list[str],
    chosen: TrialOutcome,
    request: TrainRequest,
    table: Any,
    tokenizer: str | None,
) -> Predictor:
    """The calibrated predictor.

    A cross-fitted ensemble of ``chosen``'s configuration, or (``request.cross_fit``
    below 2) ``chosen`` itself, split-conformal on the validation and calibration rows.
    """
    options: dict[str, Any] = {
        "prompt_classes": request.prompt_classes,
        "min_group": request.min_group,
        "seed": request.seed,
        "by": request.calibration_by,
    }
    if request.cross_fit >= 2:
        rows = np.sort(np.concatenate([split.train, split.val, split.cal]))
        fit = cross_fit(
            data,
            rows,
            [groups[i] for i in rows],
            chosen.config,
            request.cross_fit,
            static_table=table,
            tokenizer_json=tokenizer,
        )
        ensemble = fit.affordable(
            lambda p: prediction_cost_us(p, data, split.val), request.max_cost_us
        )
        return calibrate(ensemble, data, rows, train=rows, quantiles=fit.oof, **options)
    predictor = chosen.predictor
    if predictor is None:  # selected trial ran in another worker: refit its config here
        predictor, _ = fit_network(
            data,
            split.train,
            split.val,
            chosen.config,
            static_table=table,
            tokenizer_json=tokenizer,
        )
    calibration_rows = np.concatenate([split.val, split.cal])
    return calibrate(predictor, data, calibration_rows, train=split.train, **options)


def _text_cost(data: TrainingData, split: Split) -> Callable[[Any], float]:
    """Measure a text variant's hot-path cost on up to 100 validation prompts."""
    from training.text import measure_text_cost_us

    prompts = data.cols.get("prompt")
    sample = [str(p) for p in (prompts[split.val] if prompts is not None else []) if p][:100]

    def cost(spec: Any) -> float:
        return measure_text_cost_us(spec, sample, repeats=1) if sample else 0.0

    return cost


def _plots(
    outcome: TrainOutcome, data: TrainingData, quantiles: dict[str, F64], out_dir: Path
) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    test = outcome.split.test
    y = data.y[test]
    levels = np.array(EVAL_LEVELS)
    full = outcome.predictor.predict(data.rows(test), len(test))
    u = metrics.pit(y, full, np.array(outcome.predictor.spec.levels), lower=0.0)
    selected = outcome.search.selected
    return {
        "reliability": plots.reliability_diagram(
            {name: (levels, metrics.coverage(y, q)) for name, q in quantiles.items()},
            out_dir / "reliability.png",
        ),
        "pit": plots.pit_histogram(u, out_dir / "pit_histogram.png"),
        "pareto": plots.pareto_front(
            [(t.cost_us, t.val_loss, t.pareto, t is selected) for t in outcome.search.trials],
            out_dir / "pareto_front.png",
        ),
        "comparison": plots.comparison_bar(
            {name: float(s["mean_pinball"]) for name, s in outcome.comparison.items()},
            out_dir / "comparison.png",
        ),
    }
