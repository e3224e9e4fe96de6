"""The long metrics table of ``results/summary/metrics.csv``: ``run, task, metric, class, value``.

``run`` names the run the row scores: ``round0``, ``round1``, ..., ``translated``, ``gan_samples``, ``gan_encoder``, ``gan_inversion`` or ``oracle``.

Values are percent; ``class`` is a class name, ``all`` (19 classes), ``all16`` (the 16 classes of
the Synthia protocol), ``all13`` (its 13-class mIoU*), or ``things``/``stuff`` groups for panoptic metrics.
"""

from __future__ import annotations

import math
import re
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


NAMED_RUNS = ("translated", "gan_samples", "gan_encoder", "gan_inversion", "oracle")
"""Runs that are not a round, in table order: round 0 trained with the translated source, round 0's
semantic model trained with SemanticGAN's sampled pairs, SemanticGAN's readouts (the encoder alone, and with test-time inversion), and the upper bound
trained on target labels."""


def round_index(name: str) -> int:
    """The round of a round's run name: ``round2`` -> 2."""
    return int(name.removeprefix("round"))


def run_order(name: str) -> tuple[int, int]:
    """Sort key of a run name: ``round0``, ``round1``, ... then :data:`NAMED_RUNS` in their order."""
    return (1 + NAMED_RUNS.index(name), 0) if name in NAMED_RUNS else (0, round_index(name))


def round_title(name: str) -> str:
    """A run name as tables and plots title it: ``round 0``, ``round 2``, ``translated``, ``gan_encoder``, ``oracle``."""
    return name if name in NAMED_RUNS else f"round {name.removeprefix('round')}"


def read_metrics(path: str | Path, columns: list[str] = COLUMNS, kind: str = "metrics table",
                 writer: str = "a score-* command or by summarize") -> pd.DataFrame:
    """A metrics table (CSV with ``columns``, :data:`COLUMNS` by default); :class:`InputError`
    naming the file (and line) when it is not one (``kind``, written by ``writer``): not a CSV,
    other columns, a run not named by :func:`run_order`, a value that is no number, a row twice."""
    fix = f"give a CSV written by {writer}"
    try:
        frame = pd.read_csv(path, dtype={"run": str, "experiment": str})
    except FileNotFoundError:
        raise InputError(f"{kind} does not exist", path, fix) from None
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise InputError(f"not a {kind} ({type(exc).__name__})", path, fix) from None
    if list(frame.columns) != columns:
        raise InputError(f"not a {kind} (columns {list(frame.columns)[:8]}, expected {columns})", path, fix)
    _check_rows(frame, path, kind, fix)
    return frame


RUN_NAME = re.compile(r"round\d+")
"""A round's run name; the others are :data:`NAMED_RUNS`."""


def _check_rows(frame: pd.DataFrame, path: str | Path, kind: str, fix: str) -> None:
    """Refuse rows that the summary and the report cannot order or plot, naming the CSV line
    (the header is line 1): an unknown run name, a value that is no number, a row given twice.
    Makes ``value`` numeric in place."""
    for index, name in frame["run"].items():
        if not (isinstance(name, str) and (RUN_NAME.fullmatch(name) or name in NAMED_RUNS)):
            raise InputError(f"line {index + 2} of the {kind}: run {name!r} is not round<N> (round0, round1, ...), "
                             f"{', '.join(NAMED_RUNS[:-1])} or {NAMED_RUNS[-1]}", path, fix)
    values = pd.to_numeric(frame["value"], errors="coerce")
    for index in frame.index[values.isna() & frame["value"].notna()]:
        raise InputError(f"line {index + 2} of the {kind}: value {frame['value'][index]!r} is not a number", path, fix)
    frame["value"] = values
    keys = [column for column in frame.columns if column != "value"]
    seen: dict[tuple, int] = {}
    for index, row in zip(frame.index, frame[keys].astype(str).itertuples(index=False, name=None)):
        if row in seen:
            raise InputError(f"lines {seen[row] + 2} and {index + 2} of the {kind} both score "
                             f"{', '.join(f'{k} {v}' for k, v in zip(keys, row))}", path,
                             f"keep one of the two rows, or {fix}")
        seen[row] = index


def _check_distinct(frames: list[pd.DataFrame], paths: list[str | Path]) -> None:
    """Refuse two tables that score the same run, task, metric and class (the summary would hold both)."""
    seen: dict[tuple, int] = {}
    for number, (path, frame) in enumerate(zip(paths, frames)):
        for row in frame[COLUMNS[:-1]].astype(str).itertuples(index=False, name=None):
            if seen.setdefault(row, number) != number:
                raise InputError(f"scores run {row[0]}, task {row[1]}, metric {row[2]}, class {row[3]} again, as "
                                 f"{paths[seen[row]]} does", path, "give each run's metrics table once")


def collect_metrics(paths: list[str | Path]) -> pd.DataFrame:
    """Concatenate per-stage metric tables into the summary table, runs in order (round0, round1, ..., translated, oracle)."""
    frames = [read_metrics(p) for p in paths]
    _check_distinct(frames, paths)
    frame = pd.concat(frames, ignore_index=True)
    frame["_order"] = frame["run"].map(run_order)
    frame = frame.sort_values(["_order", "task"], kind="stable").drop(columns="_order")
    return frame.reset_index(drop=True)
