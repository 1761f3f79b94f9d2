"""Adaptive conformal offsets in the service: learned by the drift judge, served by all.

:class:`ServedCalibration` holds the service's :class:`drift.AdaptiveCalibrator` and the
champion version each served model's offsets were learned for. The replica that judges
drift (:mod:`serving._drift`) updates it with every judged completion: the forecast the
completion stood for is the champion's grid forecast adjusted by the current offsets of
its group (served model, prompt class, device), and the observed latency steps the
offsets (the monitor keeps judging the model's own, unadjusted forecast). A new champion
version starts its served model's offsets at zero.

Every forecast of every replica multiplies the champion's grid (seconds) by
``exp(offsets)`` of its row's group (:meth:`ServedCalibration.adjust`: one lookup per
distinct group of a batch, :func:`drift.apply_offsets` keeps the quantiles
non-decreasing), and only when the offsets were learned for the version it serves.

The judge saves the document (:meth:`drift.AdaptiveCalibrator.to_dict` plus
``"versions"``, served model -> champion version) under :data:`CALIBRATION_KEY` of the
store's drift state, in the transaction that acknowledges each judged batch
(:mod:`serving._drift_persist`), and a replica that becomes the judge restores it, so a
restart or a successor continues the same offsets. Other replicas read the stored
document every ``refresh_s`` seconds on a background thread (never on the forecast
path): they apply the judge's offsets as of its last acknowledged batch, at most
``refresh_s`` (plus one judge pass) late. A stored document of another format, or one
that cannot be read, is ignored with a warning (the offsets start at zero); offsets of
another champion version than the one served are dropped on restore and never applied.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from core.drift import DriftGroup
from drift import AdaptiveCalibrator, ConformalConfig, apply_offsets
from feature_store import RecordStore
from serving._models import LoadedModel

logger = logging.getLogger(__name__)

F64 = npt.NDArray[np.float64]
#: The drift-state key of the calibrator's document (group keys hold ``|``; the judge's
#: own key is ``judge``).
CALIBRATION_KEY = "conformal"
#: Seconds between refreshes of the stored document on replicas that do not judge.
REFRESH_S = 5.0
_MAX_GROUPS = 4096  # cached group objects of the forecast path


@dataclass(slots=True)
class _Offsets:
    """A calibrator and the champion version of each served model it learned for."""

    calibrator: AdaptiveCalibrator
    versions: dict[str, str] = field(default_factory=dict)


class ServedCalibration:
    """The service's adaptive conformal offsets (thread-safe; see the module docstring).

    Args:
        store: The shared store (the drift state holding the document).
        enabled: Whether forecasts are adjusted and the judge learns; when ``False``
            every method leaves forecasts and the stored document alone.
        refresh_s: Seconds between reads of the stored document while this replica
            is not the judge (> 0).
        config: The calibrator's settings (default :class:`drift.ConformalConfig`).

    Raises:
        ValueError: ``refresh_s`` is not positive.
    """

    def __init__(
        self,
        store: RecordStore,
        *,
        enabled: bool = True,
        refresh_s: float = REFRESH_S,
        config: ConformalConfig | None = None,
    ) -> None:
        if refresh_s <= 0:
            raise ValueError(f"refresh_s must be > 0 seconds (got {refresh_s})")
        self.store = store
        self.enabled = enabled
        self.refresh_s = refresh_s
        self.config = config
        self.refreshes = 0  # stored documents taken by the refresh thread
        self._state = _Offsets(AdaptiveCalibrator(config))
        self._groups: dict[tuple[str, str, str], DriftGroup] = {}
        self._lock = threading.Lock()
        self._judging = False
        self._generation = 0  # bumped when the judge takes over or lets go
        self._saved: str | None = None  # the document last committed by this judge
        self._read: str | None = None  # the document last read by the refresh thread
        self._warned: str | None = None  # the unreadable document last warned about
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def calibrator(self) -> AdaptiveCalibrator:
        """The calibrator forecasts use now (replaced on restore and refresh)."""
        return self._state.calibrator

    def versions(self) -> dict[str, str]:
        """The champion version per served model the offsets were learned for (a copy)."""
        return dict(self._state.versions)

    def applies(self, model: LoadedModel) -> bool:
        """Whether forecasts of ``model`` get offsets (on, and learned for its version)."""
        return self.enabled and self._state.versions.get(model.served_model) == str(
            model.version.version
        )

    # --- the forecast path ---------------------------------------------------------
    def adjust(
        self,
        model: LoadedModel,
        values: F64,
        classes: Sequence[str | None],
        prompt_classes: Sequence[str | None],
        devices: Sequence[str],
    ) -> F64:
        """The served forecasts: ``values`` times ``exp(offsets)`` of each row's group.

        Args:
            model: The champion that forecast ``values``.
            values: Its grid forecasts, seconds, ``(n, K)`` at ``model.predictor.spec.levels``.
            classes: The predictor's prompt class of each row.
            prompt_classes: The request's own prompt class of each row (used where the
                predictor has none, as the judge does), or ``None``.
            devices: Each row's device.

        Returns:
            ``values`` itself when no offsets apply, else new non-decreasing rows.
        """
        state = self._state
        served_model = model.served_model
        if not self.enabled or state.versions.get(served_model) != str(model.version.version):
            return values
        keys = [
            (c or p or "default", d)
            for c, p, d in zip(classes, prompt_classes, devices, strict=True)
        ]
        index = {key: i for i, key in enumerate(dict.fromkeys(keys))}
        levels = model.predictor.spec.levels
        cal = state.calibrator
        rows = [cal.offsets(self._group(served_model, c, d), levels) for c, d in index]
        if len(rows) == 1:
            offsets = rows[0]
        else:
            pick = np.fromiter((index[k] for k in keys), dtype=np.intp, count=len(keys))
            offsets = np.stack(rows)[pick]
        if not offsets.any():
            return values
        return apply_offsets(values, offsets)

    def _group(self, served_model: str, prompt_class: str, device: str) -> DriftGroup:
        key = (served_model, prompt_class, device)
        group = self._groups.get(key)
        if group is None:
            if len(self._groups) >= _MAX_GROUPS:
                self._groups = {}
            group = self._groups[key] = DriftGroup(
                served_model=served_model, prompt_class=prompt_class, device=device
            )
        return group

    # --- the judge -----------------------------------------------------------------
    def observe(
        self,
        model: LoadedModel,
        values: F64,
        groups: Sequence[DriftGroup],
        observed: F64,
    ) -> None:
        """Learn from judged completions of ``model``, in order (the judge calls it).

        Args:
            model: The champion that judged them (another version than the offsets
                were learned for resets its served model's offsets first).
            values: Its grid forecasts of the completions, seconds, ``(n, K)``.
            groups: Each completion's group.
            observed: Each completion's latency, seconds, ``(n,)``.
        """
        if not self.enabled:
            return
        state = self._state
        served_model, version = model.served_model, str(model.version.version)
        cal = state.calibrator
        if state.versions.get(served_model) != version:
            cal.reset(served_model)  # a new champion starts afresh
            state.versions[served_model] = version
        levels = model.predictor.spec.levels
        for row, group, y in zip(values, groups, observed.tolist(), strict=True):
            cal.update(group, levels, cal.adjust(group, levels, row), y)

    def restore(self, text: str | None, champion: Callable[[str], str | None]) -> None:
        """This replica becomes the judge: continue the stored document ``text``.

        Offsets of a served model whose stored version is not ``champion(served_model)``
        (when that is known) are dropped; an unreadable document leaves none.
        """
        state = self._parse(text, champion)
        with self._lock:
            self._judging = True
            self._generation += 1
            self._state = state
            self._saved = None

    def release(self) -> None:
        """This replica stopped judging: read the stored document again."""
        with self._lock:
            self._judging = False
            self._generation += 1
            self._read = None

    def document(self) -> str | None:
        """The document to save with the next acknowledgement (``None``: unchanged, or off)."""
        if not self.enabled:
            return None
        state = self._state
        doc: dict[str, Any] = state.calibrator.to_dict()
        doc["versions"] = dict(sorted(state.versions.items()))
        text = json.dumps(doc, separators=(",", ":"))
        return None if text == self._saved else text

    def saved(self, text: str) -> None:
        """``text`` (from :meth:`document`) was committed."""
        self._saved = text

    # --- other replicas ------------------------------------------------------------
    def start(self) -> None:
        """Start refreshing from the store (idempotent; nothing when off)."""
        if not self.enabled or self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="tailcast-calibration", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop refreshing."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            self.refresh()
            self._stop.wait(self.refresh_s)

    def refresh(self) -> bool:
        """Take the stored document unless this replica judges; whether it was taken.

        A store that cannot be read keeps the offsets held (logged).
        """
        with self._lock:
            if self._judging:
                return False
            generation = self._generation
        try:
            text = self.store.load_drift_state().get(CALIBRATION_KEY)
        except Exception:
            logger.warning("cannot read the stored calibration offsets", exc_info=True)
            return False
        if text is not None and text == self._read:
            return False
        state = self._parse(text, None)
        with self._lock:
            if self._judging or generation != self._generation:
                return False
            self._state, self._read = state, text
            self.refreshes += 1
        return True

    def _parse(self, text: str | None, champion: Callable[[str], str | None] | None) -> _Offsets:
        """The offsets of a stored document (none when absent or unreadable)."""
        fresh = _Offsets(AdaptiveCalibrator(self.config))
        if text is None:
            return fresh
        try:
            doc = json.loads(text)
            if not isinstance(doc, dict) or not isinstance(doc.get("versions", {}), dict):
                raise ValueError("not a calibration document")
            versions = {str(k): str(v) for k, v in doc.get("versions", {}).items()}
            cal = AdaptiveCalibrator.from_dict(doc, self.config)
        except (ValueError, TypeError) as exc:
            if text != self._warned:
                logger.warning("stored calibration offsets ignored (starting afresh): %s", exc)
                self._warned = text
            return fresh
        for served_model in cal.served_models():
            stored = versions.get(served_model)
            now = champion(served_model) if champion is not None else None
            if stored is None or (now is not None and now != stored):
                logger.info(
                    "calibration offsets of %s v%s dropped: v%s is champion",
                    served_model,
                    stored,
                    now,
                )
                cal.reset(served_model)
                versions.pop(served_model, None)
        return _Offsets(cal, versions)
