"""The MLflow model registry of tailcast predictors.

Each served model has one registered model, ``tailcast-<served_model>``. A training
run logs its parameters, metrics and plots, and registers a new version aliased
``challenger``; ``champion`` moves only by :meth:`MLflowRegistry.promote` (called
automatically when a challenger beats the champion on the same held-out data, or by
a person in the MLflow UI or with ``tailcast models promote``).
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import BaseModel, ConfigDict

from core import TailcastError
from core.predictor import Predictor
from registry._pyfunc import BUNDLE_ARTIFACT, TailcastPyfunc, quantile_columns

CHAMPION, CHALLENGER = "champion", "challenger"
EXAMPLE_COLUMNS = (
    "served_model", "device", "prompt", "prompt_class", "input_tokens", "cached_tokens",
    "step", "num_running", "num_waiting", "kv_cache_util", "ep_completions",
    "ep_median_tokens_per_s", "ep_median_latency_s", "wf_prev_output_tokens",
    "wf_prev_latency_s",
)  # fmt: skip


def registered_name(served_model: str) -> str:
    """Registered-model name for a served model."""
    return f"tailcast-{served_model}"


class ModelVersion(BaseModel):
    """One registered version."""

    model_config = ConfigDict(frozen=True)

    name: str
    version: int
    aliases: tuple[str, ...]
    run_id: str | None
    created_at: datetime
    mean_pinball: float | None = None


class RegistryError(TailcastError):
    """The registry could not do what was asked (unknown model, version or alias)."""


class MLflowRegistry:
    """Registry of tailcast predictors in MLflow.

    Args:
        tracking_uri: MLflow tracking/registry URI (``sqlite:///…``, ``postgresql://…``,
            or an ``http://`` tracking server).
        experiment: Experiment that training runs are logged to.
    """

    def __init__(self, tracking_uri: str, experiment: str = "tailcast") -> None:
        import mlflow
        from mlflow import MlflowClient

        self.tracking_uri = tracking_uri
        self.experiment = experiment
        mlflow.set_tracking_uri(tracking_uri)
        mlflow.set_registry_uri(tracking_uri)
        self.client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)

    # --- writes -------------------------------------------------------------------
    def log_training(
        self,
        served_model: str,
        predictor: Predictor,
        *,
        params: Mapping[str, Any],
        metrics: Mapping[str, float],
        artifacts: Mapping[str, Path],
        input_example: pd.DataFrame,
        tags: Mapping[str, str] | None = None,
    ) -> ModelVersion:
        """Log one training run and register its predictor as the ``challenger``.

        Returns:
            The new version.
        """
        import mlflow
        from mlflow.models import infer_signature

        mlflow.set_tracking_uri(self.tracking_uri)
        mlflow.set_experiment(self.experiment)
        name = registered_name(served_model)
        with (
            mlflow.start_run(run_name=f"train-{served_model}") as run,
            tempfile.TemporaryDirectory() as tmp,
        ):
            mlflow.set_tags({"served_model": served_model, **(tags or {})})
            mlflow.log_params({k: str(v)[:500] for k, v in params.items()})
            mlflow.log_metrics({k: float(v) for k, v in metrics.items()})
            for path in artifacts.values():
                mlflow.log_artifact(str(path), artifact_path="plots")
            bundle = predictor.save(Path(tmp) / "bundle")
            output = pd.DataFrame(
                predictor.predict(_columns(input_example), len(input_example)),
                columns=quantile_columns(predictor.spec.levels),
            )
            info = mlflow.pyfunc.log_model(
                name="predictor",
                python_model=TailcastPyfunc(),
                artifacts={BUNDLE_ARTIFACT: str(bundle)},
                signature=infer_signature(input_example, output),
                input_example=input_example,
                registered_model_name=name,
            )
            del info
            run_id = run.info.run_id
        versions = self.client.search_model_versions(f"name = '{name}' and run_id = '{run_id}'")
        version = max(int(v.version) for v in versions)
        self.client.set_registered_model_alias(name, CHALLENGER, str(version))
        if "mean_pinball" in metrics:
            self.client.set_model_version_tag(
                name, str(version), "mean_pinball", str(metrics["mean_pinball"])
            )
        return self.version(served_model, version)

    def promote(self, served_model: str, version: int, alias: str = CHAMPION) -> ModelVersion:
        """Point ``alias`` at ``version`` (what the MLflow UI's alias editor does)."""
        name = registered_name(served_model)
        self.version(served_model, version)  # raises for an unknown version
        self.client.set_registered_model_alias(name, alias, str(version))
        return self.version(served_model, version)

    # --- reads --------------------------------------------------------------------
    def version(self, served_model: str, version: int) -> ModelVersion:
        """One version; :class:`RegistryError` if it does not exist."""
        from mlflow.exceptions import MlflowException

        name = registered_name(served_model)
        try:
            mv = self.client.get_model_version(name, str(version))
        except MlflowException as exc:
            raise RegistryError(f"{name} has no version {version}") from exc
        return _to_version(mv)

    def alias_version(self, served_model: str, alias: str = CHAMPION) -> ModelVersion | None:
        """The version an alias points at, or None."""
        from mlflow.exceptions import MlflowException

        try:
            mv = self.client.get_model_version_by_alias(registered_name(served_model), alias)
        except MlflowException:
            return None
        return _to_version(mv)

    def load(
        self,
        served_model: str,
        alias: str = CHAMPION,
        *,
        version: int | None = None,
        cache_dir: Path | None = None,
    ) -> tuple[Predictor, ModelVersion]:
        """Download a version's bundle and load it with the NumPy runtime (no pyfunc)."""
        mv = (
            self.version(served_model, version)
            if version is not None
            else self.alias_version(served_model, alias)
        )
        if mv is None:
            raise RegistryError(f"{registered_name(served_model)} has no {alias!r} alias")
        source = self.client.get_model_version_download_uri(mv.name, str(mv.version))
        import mlflow

        target = cache_dir or Path(tempfile.mkdtemp(prefix="tailcast-model-"))
        local = mlflow.artifacts.download_artifacts(artifact_uri=source, dst_path=str(target))
        bundle = next(Path(local).rglob("spec.json")).parent
        return Predictor.load(bundle), mv

    def list_versions(self, served_model: str | None = None) -> list[ModelVersion]:
        """Every version of every tailcast model (or of one served model)."""
        query = (
            f"name = '{registered_name(served_model)}'"
            if served_model
            else "name LIKE 'tailcast-%'"
        )
        return sorted(
            (_to_version(v) for v in self.client.search_model_versions(query)),
            key=lambda v: (v.name, v.version),
        )


def _to_version(mv: Any) -> ModelVersion:
    tags = getattr(mv, "tags", {}) or {}
    return ModelVersion(
        name=mv.name,
        version=int(mv.version),
        aliases=tuple(sorted(getattr(mv, "aliases", []) or [])),
        run_id=mv.run_id,
        created_at=datetime.fromtimestamp(int(mv.creation_timestamp) / 1000, tz=UTC),
        mean_pinball=float(tags["mean_pinball"]) if "mean_pinball" in tags else None,
    )


def _columns(frame: pd.DataFrame) -> dict[str, Any]:
    return {c: frame[c].tolist() for c in frame.columns}
