"""Keep each served model's ``champion`` loaded: initial load, polling, atomic swaps.

Every registry call and bundle load runs in a worker thread; the event loop only
swaps the model table's reference. When the registry cannot be reached the last
good models keep serving and the error is kept for ``/readyz`` and the metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING

from serving._metrics import ServiceMetrics
from serving._models import LoadedModel, ModelTable

if TYPE_CHECKING:
    from registry import MLflowRegistry, ModelVersion

logger = logging.getLogger(__name__)

#: The alias a served model answers with.
SERVED_ALIAS = "champion"
RegistryFactory = Callable[[], "MLflowRegistry"]


@dataclass(frozen=True, slots=True)
class RegistryStatus:
    """What the last registry poll found.

    Attributes:
        reachable: Whether the last poll succeeded (``None`` before the first poll).
        last_poll_at: When the last poll finished (UTC).
        last_error: The most recent error (kept after recovery; see ``last_error_at``).
        last_error_at: When it happened (UTC).
    """

    reachable: bool | None = None
    last_poll_at: datetime | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None


class ModelPoller:
    """Loads champions into a :class:`ModelTable` and keeps them current.

    Args:
        table: Where loaded models go.
        metrics: Where loads, swaps and registry errors are counted.
        registry: The registry to use, or ``None`` to build one with ``factory``.
        factory: Builds the registry (retried on every poll until it succeeds).
        served_models: Served models to load; ``None``: every ``tailcast-*``
            registered model, rediscovered on every poll.
        interval_s: Seconds between polls.
    """

    def __init__(
        self,
        table: ModelTable,
        metrics: ServiceMetrics,
        *,
        registry: MLflowRegistry | None = None,
        factory: RegistryFactory | None = None,
        served_models: Sequence[str] | None = None,
        interval_s: float = 30.0,
    ) -> None:
        if registry is None and factory is None:
            raise ValueError("give a registry or a factory that builds one")
        if interval_s <= 0:
            raise ValueError("poll interval must be > 0 seconds")
        self.table = table
        self.metrics = metrics
        self.registry = registry
        self.factory = factory
        self.configured = tuple(served_models) if served_models is not None else None
        self.interval_s = interval_s
        self.status = RegistryStatus()
        self.model_errors: Mapping[str, str] = MappingProxyType({})
        self._known: tuple[str, ...] = self.configured or ()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    # --- what is served ---------------------------------------------------------------
    def served_models(self) -> tuple[str, ...]:
        """Served models configured or discovered, plus any loaded one, sorted."""
        return tuple(sorted({*self._known, *self.table.names()}))

    # --- polling ----------------------------------------------------------------------
    async def poll_now(self) -> RegistryStatus:
        """Poll the registry once (loads and swaps as needed); never raises."""
        async with self._lock:
            await asyncio.to_thread(self._poll)
        return self.status

    def start(self) -> None:
        """Start polling every ``interval_s`` in the background."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="tailcast-model-poller")

    async def stop(self) -> None:
        """Stop the background polling (a load in flight finishes in its thread)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self.poll_now()
            except Exception:  # pragma: no cover - _poll records its own errors
                logger.exception("model poll failed")

    def _poll(self) -> None:
        errors: dict[str, str] = {}
        failed: str | None = None
        try:
            registry = self._registry()
            names = self.configured if self.configured is not None else _discover(registry)
            self._known = tuple(names)
            for name in names:
                try:
                    note = self._refresh(registry, name)
                except Exception as exc:
                    failed = errors[name] = _describe(exc)
                    self.metrics.registry_errors.inc()
                    logger.warning("cannot refresh %s: %s", name, failed)
                else:
                    if note is not None:
                        errors[name] = note
        except Exception as exc:
            failed = _describe(exc)
            self.metrics.registry_errors.inc()
            logger.warning("model registry unreachable: %s", failed)
        now = datetime.now(UTC)
        self.model_errors = MappingProxyType(errors)
        self.metrics.registry_up.set(0 if failed else 1)
        self.status = RegistryStatus(
            reachable=failed is None,
            last_poll_at=now,
            last_error=failed or self.status.last_error,
            last_error_at=now if failed else self.status.last_error_at,
        )

    def _registry(self) -> MLflowRegistry:
        if self.registry is None:
            assert self.factory is not None
            self.registry = self.factory()
        return self.registry

    def _refresh(self, registry: MLflowRegistry, served_model: str) -> str | None:
        """Load ``served_model``'s champion if it changed; returns a note when there is none."""
        champion = registry.alias_version(served_model, SERVED_ALIAS)
        if champion is None:
            from registry import registered_name

            return f"{registered_name(served_model)} has no {SERVED_ALIAS!r} alias"
        current = self.table.get(served_model)
        if current is not None and current.version.version == champion.version:
            return None
        loaded = self._load(registry, served_model, champion)
        previous = self.table.swap(loaded)
        self.metrics.model_served(
            served_model,
            loaded.version.version,
            None if previous is None else previous.version.version,
            time.time(),
        )
        logger.info(
            "serving %s v%d (was %s)",
            served_model,
            loaded.version.version,
            "none" if previous is None else f"v{previous.version.version}",
        )
        return None

    @staticmethod
    def _load(registry: MLflowRegistry, served_model: str, champion: ModelVersion) -> LoadedModel:
        """Download, load and warm up one version (the bundle is read into memory)."""
        with tempfile.TemporaryDirectory(prefix="tailcast-serving-") as tmp:
            predictor, version = registry.load(
                served_model, version=champion.version, cache_dir=Path(tmp)
            )
        predictor.predict({"served_model": [served_model], "device": [None]}, 1)  # warm-up
        return LoadedModel(served_model, predictor, version, datetime.now(UTC))

    # --- registry reads for the API ------------------------------------------------------
    @staticmethod
    def registered_name(served_model: str) -> str:
        """The registered-model name of ``served_model`` (``tailcast-<served_model>``)."""
        return _registered_prefix() + served_model

    async def registry_versions(
        self, timeout_s: float
    ) -> tuple[dict[str, list[ModelVersion]], str | None]:
        """Every tailcast version by served model, or ``({}, error)`` if unreachable."""
        registry = self.registry
        if registry is None:
            return {}, self.status.last_error or "registry not connected yet"
        try:
            versions = await asyncio.wait_for(
                asyncio.to_thread(registry.list_versions), timeout=timeout_s
            )
        except TimeoutError:
            return {}, f"registry did not answer within {timeout_s:g} s"
        except Exception as exc:
            return {}, _describe(exc)
        prefix = _registered_prefix()
        out: dict[str, list[ModelVersion]] = {}
        for v in versions:
            out.setdefault(v.name.removeprefix(prefix), []).append(v)
        return out, None


def _discover(registry: MLflowRegistry) -> list[str]:
    """Served models of every ``tailcast-*`` registered model that has a version."""
    prefix = _registered_prefix()
    names = {v.name for v in registry.list_versions()}
    return sorted(n.removeprefix(prefix) for n in names)


def _registered_prefix() -> str:
    """``tailcast-``: the registered-model prefix (imported only with a live registry)."""
    from registry import registered_name

    return registered_name("")


def _describe(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text if len(text) <= 500 else text[:497] + "..."
