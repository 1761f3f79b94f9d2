"""The drift judge's state in the store: restored when a replica becomes the judge.

A judge saves, after every judged batch, the groups the batch changed (one JSON text
per group, :class:`drift.GroupSnapshot`), the keys of groups a new champion reset, and
its own :class:`drift.JudgeSnapshot` (champion version judged per served model, the
retraining debouncer's cooldowns) when it changed, together with the batch's inbox
acknowledgement, in one store transaction (:meth:`RecordStore.save_drift_state`). So
the stored state is always that of the acknowledged completions: a judge that dies
before committing leaves both the batch and the state before it, and its successor
judges the batch again from that state, exactly as the dead judge did (events have
deterministic ids, so the ones it already stored are skipped).

A replica that becomes the judge loads every state (:meth:`DriftPersistence.restore`);
groups of a served model whose champion now has another version are dropped (a new
champion starts a fresh judgement), and so are states it cannot read (another format);
these start afresh when next observed.

The adaptive calibration offsets (:mod:`serving._calibration`) are one more document
of the same state, under :data:`serving._calibration.CALIBRATION_KEY`: saved with each
acknowledgement when they changed, restored by the next judge, never given to the
monitor.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence

from pydantic import ValidationError

from drift import JUDGE_KEY, STATE_FORMAT, DriftMonitor, JudgeSnapshot, RetrainDebouncer
from feature_store import RecordStore
from serving._calibration import CALIBRATION_KEY, ServedCalibration

logger = logging.getLogger(__name__)

#: The champion version a replica serves for a served model (``None``: no champion).
Champion = Callable[[str], str | None]


class DriftPersistence:
    """Saves the judge's state with each acknowledgement and restores it on taking over.

    Args:
        store: The shared store.
        calibration: The served conformal offsets, saved and restored with the state.
    """

    def __init__(self, store: RecordStore, calibration: ServedCalibration | None = None) -> None:
        self.store = store
        self.calibration = calibration
        self._unsaved: dict[str, str | None] = {}  # changes of a commit that failed
        self._judge_saved: str | None = None  # the judge snapshot last saved

    def restore(
        self,
        monitor: DriftMonitor,
        debouncer: RetrainDebouncer | None,
        champion: Champion,
    ) -> dict[str, str]:
        """Load the stored state into ``monitor``, ``debouncer`` and the calibration.

        Args:
            monitor: An empty monitor; it takes every readable group state.
            debouncer: Takes the stored cooldowns (``None``: no retraining).
            champion: The champion version now served for a served model.

        Returns:
            The champion version judged per served model (the stale ones dropped).

        Raises:
            Exception: Whatever the store raises when it cannot be read (the caller
                does not judge without its state).
        """
        states = self.store.load_drift_state()
        judge = _judge_snapshot(states.pop(JUDGE_KEY, None))
        offsets = states.pop(CALIBRATION_KEY, None)  # not a group: never the monitor's
        if self.calibration is not None:
            self.calibration.restore(offsets, champion)
        skipped = monitor.restore(states)
        versions = dict(judge.versions)
        for status in monitor.states():
            if status.model_version is not None:
                versions.setdefault(status.group.served_model, status.model_version)
        for served_model, version in sorted(versions.items()):
            now = champion(served_model)
            if now is not None and now != version:
                logger.info(
                    "drift state of %s v%s dropped: v%s is champion", served_model, version, now
                )
                monitor.reset(served_model)  # deleted from the store with the next save
                del versions[served_model]
        if debouncer is not None:
            debouncer.restore(judge.retrain_requested_at)
        self._unsaved, self._judge_saved = {}, None
        logger.info(
            "drift state restored: %d groups (%d unreadable)", len(monitor.states()), len(skipped)
        )
        return versions

    def commit(
        self,
        monitor: DriftMonitor,
        versions: Mapping[str, str],
        debouncer: RetrainDebouncer | None,
        request_ids: Sequence[str],
    ) -> None:
        """Save what the batch changed and acknowledge it, in one store transaction.

        The state saved: the groups ``monitor`` changed, the judge's snapshot (versions,
        cooldowns) and the calibration's document, each when it changed.

        Raises:
            Exception: Whatever the store raises; the changes are kept and saved with
                the next commit (the batch stays in the inbox).
        """
        changes = {**self._unsaved, **monitor.take_changes()}
        judge = JudgeSnapshot(
            format=STATE_FORMAT,
            versions=dict(versions),
            retrain_requested_at=debouncer.snapshot() if debouncer is not None else {},
        ).model_dump_json()
        if judge != self._judge_saved:
            changes[JUDGE_KEY] = judge
        calibration = self.calibration
        offsets = calibration.document() if calibration is not None else None
        if offsets is not None:
            changes[CALIBRATION_KEY] = offsets
        states = {k: v for k, v in changes.items() if v is not None}
        drop = [k for k, v in changes.items() if v is None]
        try:
            self.store.save_drift_state(states, drop=drop, ack=request_ids)
        except Exception:
            self._unsaved = changes
            raise
        self._unsaved, self._judge_saved = {}, judge
        if calibration is not None and offsets is not None:
            calibration.saved(offsets)


def _judge_snapshot(text: str | None) -> JudgeSnapshot:
    """The stored judge snapshot, or an empty one (none stored, or unreadable)."""
    empty = JudgeSnapshot(format=STATE_FORMAT)
    if text is None:
        return empty
    try:
        snap = JudgeSnapshot.model_validate_json(text)
    except ValidationError as exc:
        logger.warning("the drift judge's stored state is unreadable: %s", exc)
        return empty
    return snap if snap.format == STATE_FORMAT else empty
