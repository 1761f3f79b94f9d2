"""llm-d's training server, tailcast style: TTFT and TPOT retrained from stored samples.

Samples arrive on ``POST /add_training_data_bulk`` and are stored as completion
records of the llm-d served model (see :mod:`serving.compat`). :class:`LlmdRetrainer`
runs inside ``tailcast serve``: every ``interval_s`` it counts the stored samples and,
once there are at least ``min_samples`` new ones since the last round, exports the
training frame to Parquet and trains in a child process (``python -m pipelines.llmd
FRAME``), so torch never shares the service's interpreter and the DuckDB file stays
with the service. The child fits two predictors, one fixed network each (no search,
so a round over a few thousand samples takes seconds; see :func:`fit_config`) on
llm-d's request and pod fields, tokens in flight included, registers them as
``<name>.ttft`` and ``<name>.tpot`` and promotes each one that beats its champion on
the same held-out rows (or when there is none); the service's poller then swaps them
in. Until both exist, the llm-d endpoints answer 503 ``Models not ready``, as llm-d's
prediction server does. Samples flushed by ``POST /flush`` (see
:func:`serving.compat.retained`) are neither counted nor trained on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from core import Settings

if TYPE_CHECKING:
    import pyarrow as pa

    from core.predictor import Predictor
    from serving import ServiceState
    from training import Split, TrainConfig, TrainingData

logger = logging.getLogger(__name__)

#: Most epochs of one fit (early stopping on the validation fold usually ends sooner).
MAX_EPOCHS = 60


@dataclass(frozen=True, slots=True)
class LlmdRetrainConfig:
    """When and how hard the llm-d targets are retrained.

    Attributes:
        served_model: The llm-d served model (``ServingConfig.llmd_served_model``).
        interval_s: Seconds between checks for new samples.
        min_samples: Samples (with a TTFT) needed before the first round, and new
            samples needed before each further round.
    """

    served_model: str = "llm-d"
    interval_s: float = 60.0
    min_samples: int = 200


def with_tpot(frame: pa.Table) -> pa.Table:
    """Rows with generated tokens, plus ``tpot_s = (latency_s - ttft_s) / output_tokens``."""
    import pyarrow as pa
    import pyarrow.compute as pc

    keep = pc.and_(
        pc.greater(pc.fill_null(frame["output_tokens"], 0), 0),
        pc.is_valid(frame["latency_s"]),
    )
    rows = frame.filter(keep)
    tokens = pc.cast(rows["output_tokens"], pa.float64())
    tpot = pc.divide(pc.subtract(rows["latency_s"], rows["ttft_s"]), tokens)
    return rows.append_column("tpot_s", tpot)


#: Numeric features of the TTFT predictor: what llm-d sends about the request and the pod.
TTFT_FEATURES: tuple[str, ...] = (
    "log_input_tokens",
    "input_ktokens",
    "cached_fraction",
    "log_uncached_tokens",
    "log_num_running",
    "log_num_waiting",
    "kv_cache_util",
    "prefill_ktokens_in_flight",
    "decode_ktokens_in_flight",
)
#: TPOT also sees ``num_tokens_generated`` (llm-d sends it with every prediction).
TPOT_FEATURES: tuple[str, ...] = (*TTFT_FEATURES, "log_output_tokens")


def hidden_width(samples: int) -> int:
    """Width of both hidden layers for ``samples`` training samples.

    Parameters grow about linearly with the data (the width with its square root, in
    steps of 8, from 32 to 64 at about 5,000 samples): few samples get a small, fast
    network, and llm-d's model file grows as samples arrive, as llm-d's own tree
    models do.

    >>> [hidden_width(n) for n in (100, 2_000, 4_000, 100_000)]
    [32, 32, 48, 64]
    """
    width = 8 * round(math.sqrt(samples / 100.0))
    return int(min(64, max(32, width)))


def fit_config(target: str, samples: int) -> TrainConfig:
    """The one fixed configuration of an llm-d target (no search: rounds must be quick)."""
    from training import TrainConfig

    width = hidden_width(samples)
    return TrainConfig(
        target=target,
        numeric=TPOT_FEATURES if target == "tpot_s" else TTFT_FEATURES,
        hidden=(width, width),
        dropout=0.0,
        lr=1e-2,
        weight_decay=0.0,
        batch_size=256,
        max_epochs=MAX_EPOCHS,
        patience=8,
    )


def fit_target(
    frame: pa.Table, target: str
) -> tuple[Predictor, dict[str, Any], TrainingData, Split]:
    """Fit one target on the train fold, calibrate it on val + cal, score it on test.

    Args:
        frame: The llm-d training frame (``ttft_s``; ``tpot_s`` from :func:`with_tpot`).
        target: ``ttft_s`` or ``tpot_s`` (seconds).

    Returns:
        (the calibrated predictor, its held-out scores, the training data, the split).

    Raises:
        ValueError: With fewer than 100 usable rows.
    """
    from training import (
        TrainingData,
        calibrate,
        evaluate_models,
        fit_network,
        group_keys,
        split_by_group,
    )

    data = TrainingData.from_arrow(frame, target)
    if data.n < 100:
        raise ValueError(f"only {data.n} usable rows for {target}; need >= 100")
    data.text = np.zeros((data.n, 0), dtype=np.float32)
    split = split_by_group(group_keys(data.cols))
    config = fit_config(target, len(split.train))
    predictor, _ = fit_network(data, split.train, split.val, config)
    cal = np.concatenate([split.val, split.cal])
    predictor = calibrate(predictor, data, cal, prompt_classes=0, by="served_model")
    scores, _ = evaluate_models(predictor, data, split.train, split.test, baselines=())
    return predictor, scores["tailcast"], data, split


def train_target(settings: Settings, frame: pa.Table, key: str, target: str) -> tuple[int, bool]:
    """Train, register as ``key`` and (if it wins) promote one llm-d target's predictor.

    The new version becomes the champion when its mean pinball loss on the held-out
    rows is below the champion's on the same rows (or when there is none).
    """
    from pipelines.train import flat_metrics, input_example
    from registry import MLflowRegistry
    from training import evaluate_models

    predictor, score, data, split = fit_target(frame, target)
    registry = MLflowRegistry(settings.mlflow_tracking_uri or "")
    champion = registry.alias_version(key)
    champion_loss: float | None = None
    if champion is not None:
        old, _ = registry.load(key, version=champion.version)
        old_scores, _ = evaluate_models(old, data, split.train, split.test, baselines=())
        champion_loss = float(old_scores["tailcast"]["mean_pinball"])
    metrics = flat_metrics({"tailcast": score})
    version = registry.log_training(
        key,
        predictor,
        params={"served_model": key, "target": target, "samples": data.n},
        metrics=metrics,
        artifacts={},
        input_example=input_example(data.rows(split.test)),
        tags={"quick": "true", "source": "llm-d"},
    )
    promoted = champion_loss is None or metrics["mean_pinball"] < champion_loss
    if promoted:
        registry.promote(key, version.version)
    return version.version, promoted


def train_llmd(
    settings: Settings, frame: pa.Table, served_model: str
) -> dict[str, tuple[int, bool]]:
    """Train the TTFT and TPOT predictors of ``served_model`` from its training frame."""
    from serving.compat import target_names

    ttft_key, tpot_key = target_names(served_model)
    return {
        ttft_key: train_target(settings, frame, ttft_key, "ttft_s"),
        tpot_key: train_target(settings, with_tpot(frame), tpot_key, "tpot_s"),
    }


class LlmdRetrainer:
    """The background retrain loop of ``tailcast serve`` (a service hook).

    Args:
        settings: tailcast settings (passed to the training child process).
        config: When and how hard to retrain.
    """

    def __init__(self, settings: Settings, config: LlmdRetrainConfig) -> None:
        self.settings = settings
        self.config = config
        self.trained_on = 0
        self.rounds = 0
        self.last_error: str | None = None
        self._service: ServiceState | None = None
        self._task: asyncio.Task[None] | None = None
        self._spare: asyncio.subprocess.Process | None = None

    async def start(self, service: ServiceState) -> None:
        """Start checking for new samples every ``interval_s``."""
        self._service = service
        self._task = asyncio.create_task(self._loop(), name="tailcast-llmd-retrain")

    async def stop(self) -> None:
        """Stop the loop (a training child in flight is killed, the spare one ended)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        spare, self._spare = self._spare, None
        if spare is not None and spare.returncode is None:
            spare.kill()
            await spare.wait()

    async def _spawn(self) -> asyncio.subprocess.Process:
        """A training child that imports the training stack, then waits for its frame.

        After the first round one child is kept ready (about 0.6 GB with torch loaded),
        so a round does not wait the seconds those imports take.
        """
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "pipelines.llmd",
            "-",
            self.config.served_model,
            env={**os.environ, **_settings_env(self.settings)},
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.interval_s)
            try:
                await self.run_once()
            except Exception as exc:  # keep looping; the next round retries
                self.last_error = str(exc)
                logger.exception("llm-d retrain round failed")

    def _samples(self) -> int:
        """Stored samples with a TTFT, less the ones ``POST /flush`` flushed."""
        from serving.compat import load_marks, retained

        assert self._service is not None
        frame = self._service.store.training_frame(
            self.config.served_model, columns=["request_id", "submitted_at"], require=("ttft_s",)
        )
        marks = load_marks(self.settings.home, self.config.served_model)
        return int(retained(frame, marks).num_rows)

    def _export(self, path: Path) -> None:
        import pyarrow.parquet as pq

        from serving.compat import load_marks, retained

        assert self._service is not None
        frame = self._service.store.training_frame(self.config.served_model, require=("ttft_s",))
        marks = load_marks(self.settings.home, self.config.served_model)
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(retained(frame, marks), path)

    async def run_once(self) -> bool:
        """Retrain now if enough new samples arrived; returns whether a round ran.

        Raises:
            RuntimeError: If the training child process failed.
        """
        assert self._service is not None
        cfg = self.config
        n = await asyncio.to_thread(self._samples)
        self.trained_on = min(self.trained_on, n)  # a flush forgot samples: count anew
        if n - self.trained_on < cfg.min_samples:
            return False
        path = self.settings.home / "llm-d" / f"frame-{datetime.now(UTC):%Y%m%dT%H%M%S%f}.parquet"
        await asyncio.to_thread(self._export, path)
        logger.info("llm-d: retraining TTFT and TPOT on %d samples", n)
        proc, self._spare = self._spare, None
        if proc is None or proc.returncode is not None:  # none yet, or it died idle
            proc = await self._spawn()
        try:
            out, _ = await proc.communicate(f"{path}\n".encode())
        except asyncio.CancelledError:
            proc.kill()
            raise
        finally:
            path.unlink(missing_ok=True)
        self._spare = await self._spawn()  # imports the training stack while idle
        if proc.returncode != 0:
            raise RuntimeError(f"llm-d training failed ({proc.returncode}): {out[-2000:]!r}")
        self.trained_on = n
        self.rounds += 1
        self.last_error = None
        await self._service.poller.poll_now()
        return True


def _settings_env(settings: Settings) -> dict[str, str]:
    """Environment that makes a child's ``Settings()`` equal ``settings``."""
    env = {"TAILCAST_HOME": str(settings.home)}
    for name, value in (
        ("TAILCAST_MLFLOW_TRACKING_URI", settings.mlflow_tracking_uri),
        ("TAILCAST_OPTUNA_STORAGE", settings.optuna_storage),
        ("TAILCAST_STORE_PATH", str(settings.resolved_store_path)),
    ):
        if value:
            env[name] = value
    return env


def _warm(settings: Settings, served_model: str) -> None:
    """Import what a round runs and open the registry, before there is a frame."""
    import lightning.pytorch.callbacks  # noqa: F401
    import torch.utils.data  # noqa: F401

    import pipelines.train  # noqa: F401
    from registry import MLflowRegistry
    from serving.compat import target_names

    MLflowRegistry(settings.mlflow_tracking_uri or "").alias_version(target_names(served_model)[0])


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m pipelines.llmd FRAME SERVED_MODEL`` (the child).

    With ``FRAME`` ``-``, the training stack is imported first and the frame's path
    then read from one line of stdin (end of input: exit without training).
    """
    import pyarrow.parquet as pq
    import torch

    from pipelines._retrain_child import NICENESS
    from pipelines.cli._train import _quiet_training_stack

    args = list(sys.argv[1:] if argv is None else argv)
    frame_path, served_model = args
    os.nice(NICENESS)  # yield the CPU to the service that started it, like drift retraining
    _quiet_training_stack()
    # One intra-op thread: these networks are too small to gain from more, and on a busy
    # machine threads that wait for each other make a fit ten times slower.
    torch.set_num_threads(1)
    if frame_path == "-":
        _warm(Settings(), served_model)
        frame_path = sys.stdin.readline().strip()
        if not frame_path:
            return
    out: Any = train_llmd(Settings(), pq.read_table(frame_path), served_model)
    for key, (version, promoted) in out.items():
        print(f"{key}: v{version}{' (champion)' if promoted else ''}")


if __name__ == "__main__":
    main()
