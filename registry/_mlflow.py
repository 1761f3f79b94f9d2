"""The MLflow model registry of tailcast predictors.

Each served model has one registered model, ``tailcast-<served_model>``. A training
run logs its parameters, metrics and plots, and registers a new version aliased
``challenger``; ``champion`` moves only by :meth:`MLflowRegistry.promote` (called
automatically when a challenger beats the champion on the same held-out data, or by
a person in the MLflow UI or with ``tailcast models promote``).

Artifacts: with a SQLite registry (the embedded default) they go to ``mlartifacts/``
next to the database file, never to MLflow's default ``./mlruns`` in the working
directory; with a tracking server (``http://…``) the server decides (its
``--artifacts-destination``); with a direct database URI pass ``artifact_root``.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pandas as pd

from core.predictor import Predictor
from registry._client import (
    RegistryError,
    default_artifact_root,
    is_database_uri,
    normalize_uri,
    probe_database,
    redacted,
    sqlite_path,
    with_connect_timeout,
)
from registry._pyfunc import (
    BUNDLE_ARTIFACT,
    TailcastPyfunc,
    quantile_columns,
    request_columns,
)
from registry._quiet import quiet_mlflow
from registry._signature import normalized_example, signature
from registry._version import VERSION_TAGS, ModelVersion, to_version

if TYPE_CHECKING:
    from mlflow.exceptions import MlflowException
    from mlflow.store.entities.paged_list import PagedList

CHAMPION, CHALLENGER = "champion", "challenger"

_T = TypeVar("_T")

#: MLflow error codes meaning "there is no such model, version or alias".
_NOT_FOUND = frozenset({"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"})


def registered_name(served_model: str) -> str:
    """Registered-model name for a served model.

    >>> registered_name("llama-3-8b")
    'tailcast-llama-3-8b'
    """
    return f"tailcast-{served_model}"


class MLflowRegistry:
    """Registry of tailcast predictors in MLflow.

    Constructing it points MLflow's process-wide tracking and registry URIs at
    ``tracking_uri`` (so ``mlflow.pyfunc.load_model("models:/tailcast-…@champion")``
    works afterwards); every method sets them again, so several registries can live in
    one process.

    Args:
        tracking_uri: MLflow tracking/registry URI (``sqlite:///…``, ``postgresql://…``,
            or an ``http://`` tracking server).
        experiment: Experiment that training runs are logged to.
        artifact_root: Artifact location of the experiment when this registry creates
            it (default: see :func:`default_artifact_root`).
        connect_timeout_s: For a PostgreSQL or MySQL registry: seconds the driver may
            take to connect (added to the URI unless it names a ``connect_timeout``),
            and the database is checked once before MLflow opens it, so an unreachable
            or missing database fails here within that time instead of after MLflow's
            ~100 s of engine retries. ``None``: MLflow's behaviour. HTTP limits are
            process-wide: see :func:`registry.bound_http_calls`.

    Raises:
        RegistryError: With ``connect_timeout_s``, the registry database cannot be
            reached.
    """

    def __init__(
        self,
        tracking_uri: str,
        experiment: str = "tailcast",
        artifact_root: str | None = None,
        *,
        connect_timeout_s: float | None = None,
    ) -> None:
        quiet_mlflow()
        uri = normalize_uri(tracking_uri)
        if connect_timeout_s is not None and is_database_uri(uri):
            uri = with_connect_timeout(uri, connect_timeout_s)
            probe_database(uri)
        from mlflow import MlflowClient

        self.tracking_uri = uri
        self.experiment = experiment
        self.artifact_root = artifact_root or default_artifact_root(self.tracking_uri)
        db = sqlite_path(self.tracking_uri)
        if db is not None:
            db.parent.mkdir(parents=True, exist_ok=True)
        self._activate()
        self.client = MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)

    def _activate(self) -> None:
        import mlflow

        mlflow.set_tracking_uri(self.tracking_uri)
        mlflow.set_registry_uri(self.tracking_uri)

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

        Args:
            served_model: The served model the predictor is for.
            predictor: The trained predictor (its bundle becomes the model artifact).
            params: Run parameters (values are logged as strings, at most 500 chars).
            metrics: Run metrics; ``mean_pinball`` is also tagged on the version.
            artifacts: Files (plots) or directories logged under ``plots/``.
            input_example: A few request rows (columns of :data:`EXAMPLE_COLUMNS`);
                the model signature declares every column optional, text columns as
                strings and the rest as numbers of any type (``registry._signature``).
            tags: Extra run tags (``trigger`` is also tagged on the version).

        Returns:
            The new version.
        """
        import mlflow

        self._activate()
        name = registered_name(served_model)
        example = normalized_example(input_example)
        output = pd.DataFrame(
            predictor.predict(request_columns(example), len(example)),
            columns=quantile_columns(predictor.spec.levels),
        )
        with (
            mlflow.start_run(
                experiment_id=self._experiment_id(), run_name=f"train-{served_model}"
            ) as run,
            tempfile.TemporaryDirectory() as tmp,
        ):
            mlflow.set_tags({"served_model": served_model, **(tags or {})})
            mlflow.log_params({k: str(v)[:500] for k, v in params.items()})
            mlflow.log_metrics({k: float(v) for k, v in metrics.items()})
            for path in artifacts.values():
                if Path(path).is_dir():
                    mlflow.log_artifacts(str(path), artifact_path=f"plots/{Path(path).name}")
                else:
                    mlflow.log_artifact(str(path), artifact_path="plots")
            bundle = predictor.save(Path(tmp) / BUNDLE_ARTIFACT)
            info = mlflow.pyfunc.log_model(
                name="predictor",
                python_model=TailcastPyfunc(),
                artifacts={BUNDLE_ARTIFACT: str(bundle)},
                signature=signature(example, output),
                input_example=example,
                registered_model_name=name,
            )
            run_id = run.info.run_id
        version = info.registered_model_version
        if version is None:  # pragma: no cover - registration is requested above
            found = self.client.search_model_versions(f"name = '{name}' and run_id = '{run_id}'")
            version = max(int(v.version) for v in found)
        version_tags = {k: v for k, v in (tags or {}).items() if k in VERSION_TAGS}
        if "mean_pinball" in metrics:
            version_tags["mean_pinball"] = str(float(metrics["mean_pinball"]))
        self.tag_version(served_model, int(version), version_tags)
        self.client.set_registered_model_alias(name, CHALLENGER, str(version))
        return self.version(served_model, int(version))

    def tag_version(self, served_model: str, version: int, tags: Mapping[str, str]) -> None:
        """Set tags on a registered version (e.g. a retraining's ``outcome``).

        Raises:
            RegistryError: Unknown model or version.
        """
        from mlflow.exceptions import MlflowException

        self._activate()
        name = registered_name(served_model)
        try:
            for key, value in tags.items():
                self.client.set_model_version_tag(name, str(version), key, str(value)[:5000])
        except MlflowException as exc:
            raise RegistryError(f"cannot tag {name} version {version}: {exc}") from exc

    def promote(self, served_model: str, version: int, alias: str = CHAMPION) -> ModelVersion:
        """Point ``alias`` at ``version`` (what the MLflow UI's alias editor does).

        Raises:
            RegistryError: Unknown model or version, or an alias MLflow rejects.
        """
        from mlflow.exceptions import MlflowException

        name = registered_name(served_model)
        self.version(served_model, version)  # raises for an unknown version
        try:
            self.client.set_registered_model_alias(name, alias, str(version))
        except MlflowException as exc:
            raise RegistryError(f"cannot alias {name} v{version} {alias!r}: {exc.message}") from exc
        return self.version(served_model, version)

    # --- reads --------------------------------------------------------------------
    def version(self, served_model: str, version: int) -> ModelVersion:
        """One version; :class:`RegistryError` if it does not exist."""
        from mlflow.exceptions import MlflowException

        name = registered_name(served_model)
        try:
            mv = self.client.get_model_version(name, str(version))
        except MlflowException as exc:
            if not _not_found(exc):
                raise self._error(exc) from exc
            if not self._model_exists(name):
                raise RegistryError(
                    f"no registered model {name} (so no version {version})"
                ) from exc
            raise RegistryError(f"{name} has no version {version}") from exc
        return to_version(mv)

    def alias_version(self, served_model: str, alias: str = CHAMPION) -> ModelVersion | None:
        """The version an alias points at, or None (also for an unknown model)."""
        from mlflow.exceptions import MlflowException

        try:
            mv = self.client.get_model_version_by_alias(registered_name(served_model), alias)
        except MlflowException as exc:
            if _not_found(exc):
                return None
            raise self._error(exc) from exc
        return to_version(mv)

    def load(
        self,
        served_model: str,
        alias: str = CHAMPION,
        *,
        version: int | None = None,
        cache_dir: Path | None = None,
    ) -> tuple[Predictor, ModelVersion]:
        """Download a version's bundle and load it with the NumPy runtime (no pyfunc).

        Args:
            served_model: The served model.
            alias: Alias to load (ignored when ``version`` is given).
            version: A version number.
            cache_dir: Where to download to (a ``<name>-v<version>`` directory in it);
                default a new temporary directory.

        Raises:
            RegistryError: Unknown model, version or alias.
        """
        import mlflow

        mv = (
            self.version(served_model, version)
            if version is not None
            else self.alias_version(served_model, alias)
        )
        if mv is None:
            raise RegistryError(f"{registered_name(served_model)} has no {alias!r} alias")
        self._activate()
        source = self.client.get_model_version_download_uri(mv.name, str(mv.version))
        root = cache_dir if cache_dir is not None else Path(tempfile.mkdtemp(prefix="tailcast-"))
        target = root / f"{mv.name}-v{mv.version}"
        target.mkdir(parents=True, exist_ok=True)
        local = mlflow.artifacts.download_artifacts(
            artifact_uri=f"{source.rstrip('/')}/artifacts/{BUNDLE_ARTIFACT}",
            dst_path=str(target),
            tracking_uri=self.tracking_uri,
        )
        return Predictor.load(local), mv

    def list_versions(self, served_model: str | None = None) -> list[ModelVersion]:
        """Every version of every tailcast model (or of one served model), with aliases.

        MLflow's version search leaves ``aliases`` empty; they come from the
        registered models.
        """
        query = (
            f"name = '{registered_name(served_model)}'"
            if served_model
            else "name LIKE 'tailcast-%'"
        )
        aliases: dict[tuple[str, int], list[str]] = {}
        for model in _pages(self.client.search_registered_models, query):
            for alias, version in (model.aliases or {}).items():
                aliases.setdefault((model.name, int(version)), []).append(alias)
        found = [
            to_version(mv, aliases.get((mv.name, int(mv.version)), []))
            for mv in _pages(self.client.search_model_versions, query)
        ]
        return sorted(found, key=lambda v: (v.name, v.version))

    # --- helpers ------------------------------------------------------------------
    def _experiment_id(self) -> str:
        """The experiment's id, created (with :attr:`artifact_root`) if missing."""
        from mlflow.exceptions import MlflowException

        exp = self.client.get_experiment_by_name(self.experiment)
        if exp is None:
            try:
                return self.client.create_experiment(
                    self.experiment, artifact_location=self.artifact_root
                )
            except MlflowException:  # created concurrently by another trainer
                exp = self.client.get_experiment_by_name(self.experiment)
                if exp is None:
                    raise
        if exp.lifecycle_stage == "deleted":
            self.client.restore_experiment(exp.experiment_id)
        return str(exp.experiment_id)

    def _model_exists(self, name: str) -> bool:
        from mlflow.exceptions import MlflowException

        try:
            self.client.get_registered_model(name)
        except MlflowException as exc:
            if _not_found(exc):
                return False
            raise self._error(exc) from exc
        return True

    def _error(self, exc: MlflowException) -> RegistryError:
        return RegistryError(f"MLflow registry at {redacted(self.tracking_uri)}: {exc.message}")


def _not_found(exc: MlflowException) -> bool:
    return exc.error_code in _NOT_FOUND


def _pages(search: Callable[..., PagedList[_T]], query: str) -> Iterator[_T]:
    """Every result of an MLflow search, page after page."""
    token: str | None = None
    while True:
        page = search(query, page_token=token)
        yield from page
        token = page.token
        if not token:
            return
