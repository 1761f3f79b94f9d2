"""Keep each served model's ``champion`` loaded: initial load, polling, atomic swaps.

Every poll runs in its own daemon thread; the event loop only waits for it, and at
most ``timeout_s`` while the registry has not answered. A poll that overruns marks the
registry unreachable (``/readyz``, ``tailcast_registry_up``) at once and is not
started again while its thread is still waiting; when the thread finishes its outcome
is recorded (so a registry that comes back is seen as soon as it answers). The last
good models keep serving throughout.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
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


@dataclass(slots=True)
class _Poll:
    """One poll thread: when it started, whether the registry answered, when it ended."""

    started: float = field(default_factory=time.monotonic)
    answered: threading.Event = field(default_factory=threading.Event)
    done: Future[None] = field(default_factory=Future)
    overdue: bool = False


class ModelPoller:
    """Loads champions into a :class:`ModelTable` and keeps them current.

    Args:
        table: Where loaded models go.
        metrics: Where loads, swaps and registry errors are counted.
        registry: The registry to use, or ``None`` to build one with ``factory``.
        factory: Builds the registry (retried on every poll until it succeeds).
        served_models: Served models to load; ``None``: every ``tailcast-*``
            registered model, rediscovered on every poll.
        interval_s: Seconds between the end of one poll and the start of the next.
        timeout_s: Longest a poll waits for the registry's answers (discovery and the
            ``champion`` aliases; loading a new champion's bundle is not limited
            here) before the registry is reported unreachable, seconds.
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
        timeout_s: float = 5.0,
    ) -> None:
        if registry is None and factory is None:
            raise ValueError("give a registry or a factory that builds one")
        if interval_s <= 0 or timeout_s <= 0:
            raise ValueError("poll interval and timeout must be > 0 seconds")
        self.table = table
        self.metrics = metrics
        self.registry = registry
        self.factory = factory
        self.configured = tuple(served_models) if served_models is not None else None
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self.status = RegistryStatus()
        self.model_errors: Mapping[str, str] = MappingProxyType({})
        self._known: tuple[str, ...] = self.configured or ()
        self._lock = asyncio.Lock()
        self._guard = threading.Lock()  # status and metrics: poll thread vs event loop
        self._poll_in_flight: _Poll | None = None
        self._task: asyncio.Task[None] | None = None

    # --- what is served ---------------------------------------------------------------
    def served_models(self) -> tuple[str, ...]:
        """Served models configured or discovered, plus any loaded one, sorted."""
        return tuple(sorted({*self._known, *self.table.names()}))

    # --- polling ----------------------------------------------------------------------
    async def poll_now(self) -> RegistryStatus:
        """Poll the registry once (loads and swaps as needed); never raises.

        Joins the poll in flight if there is one. Returns when the poll has finished,
        or once ``timeout_s`` passed since it started without the registry answering
        (the status then says unreachable; the thread records its outcome later).
        """
        async with self._lock:
            poll = self._poll_in_flight
            if poll is None or poll.done.done():
                poll = self._poll_in_flight = self._spawn()
            finished = asyncio.wrap_future(poll.done)
            left = poll.started + self.timeout_s - time.monotonic()
            try:
                await asyncio.wait_for(asyncio.shield(finished), timeout=max(left, 0.0))
            except TimeoutError:
                if poll.answered.is_set():
                    await finished  # the registry answered: a new champion is loading
                else:
                    self._overdue(poll)
        return self.status

    def start(self, *, poll_first: bool = False) -> None:
        """Poll every ``interval_s`` in the background (first at once if ``poll_first``)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(poll_first), name="tailcast-model-poller")

    async def stop(self) -> None:
        """Stop the background polling (a poll thread in flight finishes on its own)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self, poll_first: bool) -> None:
        if not poll_first:
            await asyncio.sleep(self.interval_s)
        while True:
            try:
                await self.poll_now()
            except Exception:  # pragma: no cover - _poll records its own errors
                logger.exception("model poll failed")
            await asyncio.sleep(self.interval_s)

    def _spawn(self) -> _Poll:
        """Start one poll in a daemon thread (a hung call never holds up shutdown)."""
        poll = _Poll()

        def run() -> None:
            try:
                self._poll(poll)
            finally:
                poll.done.set_result(None)

        threading.Thread(target=run, name="tailcast-registry-poll", daemon=True).start()
        return poll

    def _overdue(self, poll: _Poll) -> None:
        """Report the registry unreachable: ``poll`` has waited past ``timeout_s``."""
        waited = time.monotonic() - poll.started
        with self._guard:
            if poll.done.done() or poll.answered.is_set():
                return
            if not poll.overdue:
                poll.overdue = True
                self.metrics.registry_errors.inc()
                logger.warning("model registry has not answered for %.1f s", waited)
            self._record(
                f"registry did not answer within {waited:.1f} s (limit {self.timeout_s:g} s)"
            )

    def _poll(self, poll: _Poll) -> None:
        """One poll (in its thread): discover, read the aliases, load changed champions."""
        notes: dict[str, str] = {}
        failures: dict[str, str] = {}
        try:
            registry = self._registry()
            names = self.configured if self.configured is not None else _discover(registry)
            self._known = tuple(names)
            changed = self._changed_champions(registry, names, notes, failures)
            poll.answered.set()
            for name, champion in changed.items():
                try:
                    self._swap_in(registry, name, champion)
                except Exception as exc:
                    failures[name] = _describe(exc)
                    logger.warning("cannot load %s v%d: %s", name, champion.version, exc)
            failed = next(iter(failures.values()), None)
        except Exception as exc:
            failed = _describe(exc)
            logger.warning("model registry unreachable: %s", failed)
        with self._guard:
            if not poll.overdue:  # an overdue poll was counted once already
                self.metrics.registry_errors.inc(len(failures) or int(failed is not None))
            self.model_errors = MappingProxyType({**notes, **failures})
            self._record(failed)

    def _changed_champions(
        self,
        registry: MLflowRegistry,
        names: Sequence[str],
        notes: dict[str, str],
        failures: dict[str, str],
    ) -> dict[str, ModelVersion]:
        """Champions that differ from what is served; notes and errors for the rest."""
        from registry import registered_name

        changed: dict[str, ModelVersion] = {}
        for name in names:
            try:
                champion = registry.alias_version(name, SERVED_ALIAS)
            except Exception as exc:
                failures[name] = _describe(exc)
                logger.warning("cannot read %s's %s alias: %s", name, SERVED_ALIAS, exc)
                continue
            current = self.table.get(name)
            if champion is None:
                notes[name] = f"{registered_name(name)} has no {SERVED_ALIAS!r} alias"
            elif current is None or current.version.version != champion.version:
                changed[name] = champion
        return changed

    def _record(self, failed: str | None) -> None:
        """Set the status and ``registry_up`` from a poll's outcome (under ``_guard``)."""
        now = datetime.now(UTC)
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

    def _swap_in(self, registry: MLflowRegistry, served_model: str, champion: ModelVersion) -> None:
        """Load ``champion`` and serve it in place of the current version."""
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
        if self.status.reachable is False:  # no thread per request while it is down
            return {}, self.status.last_error
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
