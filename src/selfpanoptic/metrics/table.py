"""The long metrics table of ``results/summary/metrics.csv``: ``run, task, metric, class, value``.

``run`` names the run the row scores: ``round0``, ``round1``, ..., ``translated`` or ``oracle``.

Values are percent; ``class`` is a class name, ``all`` (19 classes), ``all16`` (the 16 classes of
the Synthia protocol), ``all13`` (its 13-class mIoU*), or ``things``/``stuff`` groups for panoptic metrics.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from ..errors import InputError

COLUMNS = ["run", "task", "metric", "class", "value"]


def percent(value: float) -> float:
    """A fraction as percent rounded to 4 decimals; NaN stays NaN (a class without ground truth)."""
    return float("nan") if math.isnan(value) else round(100.0 * value, 4)


def metric_frame(rows: list[tuple]) -> pd.DataFrame:
    """Rows ``(run, task, metric, class, value)`` as a table."""
    return pd.DataFrame(rows, columns=COLUMNS)


NAMED_RUNS = ("translated", "oracle")
"""Runs that are not a round, in table order: round 0 trained with the translated source, and
the upper bound trained on target labels."""


def round_index(name: str) -> int:
    """The round of a round's run name: ``round2`` -> 2."""
    return int(name.removeprefix("round"))


def run_order(name: str) -> tuple[int, int]:
    """Sort key of a run name: ``round0``, ``round1``, ... then ``translated``, then ``oracle``."""
    return (1 + NAMED_RUNS.index(name), 0) if name in NAMED_RUNS else (0, round_index(name))


def round_title(name: str) -> str:
    """A run name as tables and plots title it: ``round 0``, ``round 2``, ``translated``, ``oracle``."""
    return name if name in NAMED_RUNS else f"round {name.removeprefix('round')}"


def read_metrics(path: str | Path, columns: list[str] = COLUMNS, kind: str = "metrics table",
                 writer: str = "a score-* command or by summarize") -> pd.DataFrame:
    """A metrics table (CSV with ``columns``, :data:`COLUMNS` by default); :class:`InputError`
    naming the file when it is not one (``kind``, written by ``writer``)."""
    fix = f"give a CSV written by {writer}"
    try:
        frame = pd.read_csv(path, dtype={"run": str, "experiment": str})
    except FileNotFoundError:
        raise InputError(f"{kind} does not exist", path, fix) from None
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise InputError(f"not a {kind} ({type(exc).__name__})", path, fix) from None
    if list(frame.columns) != columns:
        raise InputError(f"not a {kind} (columns {list(frame.columns)[:8]}, expected {columns})", path, fix)
    return frame


def collect_metrics(paths: list[str | Path]) -> pd.DataFrame:
    """Concatenate per-stage metric tables into the summary table, runs in order (round0, round1, ..., translated, oracle)."""
    frames = [read_metrics(p) for p in paths]
    frame = pd.concat(frames, ignore_index=True)
    frame["_order"] = frame["run"].map(run_order)
    frame = frame.sort_values(["_order", "task"], kind="stable").drop(columns="_order")
    return frame.reset_index(drop=True)
