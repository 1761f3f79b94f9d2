"""Drift reports: an evidently HTML report of a reference window against the current one.

evidently is heavy; it is imported only inside :func:`build_report`.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd


def build_report(reference: pd.DataFrame, current: pd.DataFrame, path: Path) -> Path:
    """Write an evidently data-drift report comparing ``current`` with ``reference``.

    Args:
        reference: The reference window (e.g. training data), one row per completion;
            numeric and categorical feature columns, optionally ``u`` (PIT values).
        current: The current window, same columns.
        path: Where the HTML goes (parents are created).

    Returns:
        ``path``.

    Raises:
        ValueError: When the frames share no column.
    """
    from evidently import Report  # type: ignore[import-untyped]
    from evidently.presets import DataDriftPreset  # type: ignore[import-untyped]

    cols = [c for c in reference.columns if c in current.columns]
    if not cols:
        raise ValueError("reference and current share no column")
    report = Report([DataDriftPreset()])
    snapshot = report.run(
        reference_data=current[cols].iloc[:0].pipe(lambda _: reference[cols]),
        current_data=current[cols],
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    snapshot.save_html(str(path))
    return path
