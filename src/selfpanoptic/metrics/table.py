"""The long metrics table of ``results/summary/metrics.csv``: ``round, task, metric, class, value``.

Values are percent; ``class`` is a class name, ``all`` (19 classes), ``all16`` (the 16 classes of
the Synthia protocol), ``all13`` (its 13-class mIoU*), or ``things``/``stuff`` groups for panoptic metrics.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from ..errors import InputError

COLUMNS = ["round", "task", "metric", "class", "value"]


def percent(value: float) -> float:
    """A fraction as percent rounded to 4 decimals; NaN stays NaN (a class without ground truth)."""
    return float("nan") if math.isnan(value) else round(100.0 * value, 4)


def metric_frame(rows: list[tuple]) -> pd.DataFrame:
    """Rows ``(round, task, metric, class, value)`` as a table."""
    return pd.DataFrame(rows, columns=COLUMNS)


NAMED_RUNS = ("translated", "oracle")
"""Round labels that are not a self-training round, in table order: round 0 trained with the
translated source, and the upper bound trained on target labels."""


def round_order(name: str) -> tuple[int, int]:
    """Sort key of a round label: 0, 1, 2, ... then ``translated``, then ``oracle``."""
    return (1 + NAMED_RUNS.index(name), 0) if name in NAMED_RUNS else (0, int(name))


def read_metrics(path: str | Path, columns: list[str] = COLUMNS, kind: str = "metrics table",
                 writer: str = "an evaluate-* command or by summarize") -> pd.DataFrame:
    """A metrics table (CSV with ``columns``, :data:`COLUMNS` by default); :class:`InputError`
    naming the file when it is not one (``kind``, written by ``writer``)."""
    fix = f"give a CSV written by {writer}"
    try:
        frame = pd.read_csv(path, dtype={"round": str, "variant": str})
    except FileNotFoundError:
        raise InputError(f"{kind} does not exist", path, fix) from None
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise InputError(f"not a {kind} ({type(exc).__name__})", path, fix) from None
    if list(frame.columns) != columns:
        raise InputError(f"not a {kind} (columns {list(frame.columns)[:8]}, expected {columns})", path, fix)
    return frame


def collect_metrics(paths: list[str | Path]) -> pd.DataFrame:
    """Concatenate per-stage metric tables into the summary table, rounds in order (0, 1, ..., translated, oracle)."""
    frames = [read_metrics(p) for p in paths]
    frame = pd.concat(frames, ignore_index=True)
    frame["_order"] = frame["round"].map(round_order)
    frame = frame.sort_values(["_order", "task"], kind="stable").drop(columns="_order")
    return frame.reset_index(drop=True)
