"""llm-d's training server, tailcast style: TTFT and TPOT retrained from stored samples.

Samples arrive on ``POST /add_training_data_bulk`` and are stored as completion
records of the llm-d served model (see :mod:`serving.compat`). :class:`LlmdRetrainer`
runs inside ``tailcast serve``: every ``interval_s`` it counts the stored samples and,
once there are at least ``min_samples`` new ones since the last round, exports the
training frame to Parquet and trains in a child process (``python -m pipelines.llmd
FRAME``), so torch never shares the service's interpreter and the DuckDB file stays
with the service. The child trains two predictors, registers them as
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
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from core import Settings
from core.predictor import TextSpec

if TYPE_CHECKING:
    import pyarrow as pa

    from serving import ServiceState

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LlmdRetrainConfig:
    """When and how hard the llm-d targets are retrained.

    Attributes:
        served_model: The llm-d served model (``ServingConfig.llmd_served_model``).
        interval_s: Seconds between checks for new samples.
        min_samples: Samples (with a TTFT) needed before the first round, and new
            samples needed before each further round.
        trials: Search trials per target.
        timeout_s: Seconds after which a target's search starts no new trial.
    """

    served_model: str = "llm-d"
    interval_s: float = 60.0
    min_samples: int = 200
    trials: int = 2
    timeout_s: float = 120.0


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


def _no_text(
    spec: TextSpec, prompts: Sequence[str | None], keys: Sequence[str | None] | None
) -> tuple[np.ndarray, np.ndarray | None, str | None]:
    """Text features of llm-d samples: there is no prompt text, so none."""
    return np.zeros((len(prompts), 0), dtype=np.float32), None, None


def train_target(
    settings: Settings, frame: pa.Table, key: str, target: str, trials: int, timeout_s: float
) -> tuple[int, bool]:
    """Train, register as ``key`` and (if it wins) promote one llm-d target's predictor."""
    from pipelines.quick import QuickTrain, train_and_register

    plan = QuickTrain(key=key, target=target, trials=trials, timeout_s=timeout_s, text=("none",))
    return train_and_register(settings, frame, plan, _no_text, tags={"source": "llm-d"})


def train_llmd(
    settings: Settings, frame: pa.Table, served_model: str, trials: int, timeout_s: float
) -> dict[str, tuple[int, bool]]:
    """Train the TTFT and TPOT predictors of ``served_model`` from its training frame."""
    from serving.compat import target_names

    ttft_key, tpot_key = target_names(served_model)
    return {
        ttft_key: train_target(settings, frame, ttft_key, "ttft_s", trials, timeout_s),
        tpot_key: train_target(settings, with_tpot(frame), tpot_key, "tpot_s", trials, timeout_s),
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

    async def start(self, service: ServiceState) -> None:
        """Start checking for new samples every ``interval_s``."""
        self._service = service
        self._task = asyncio.create_task(self._loop(), name="tailcast-llmd-retrain")

    async def stop(self) -> None:
        """Stop the loop (a training child in flight is killed)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

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
        env = {**os.environ, **_settings_env(self.settings)}
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "pipelines.llmd",
            str(path),
            cfg.served_model,
            str(cfg.trials),
            str(cfg.timeout_s),
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        try:
            out, _ = await proc.communicate()
        except asyncio.CancelledError:
            proc.kill()
            raise
        finally:
            path.unlink(missing_ok=True)
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


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m pipelines.llmd FRAME SERVED_MODEL TRIALS TIMEOUT_S`` (the child)."""
    import pyarrow.parquet as pq

    from pipelines.cli._train import _quiet_training_stack

    args = list(sys.argv[1:] if argv is None else argv)
    frame_path, served_model, trials, timeout_s = args
    _quiet_training_stack()
    out: Any = train_llmd(
        Settings(), pq.read_table(frame_path), served_model, int(trials), float(timeout_s)
    )
    for key, (version, promoted) in out.items():
        print(f"{key}: v{version}{' (champion)' if promoted else ''}")


if __name__ == "__main__":
    main()
