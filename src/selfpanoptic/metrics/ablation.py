"""The ablation table: every experiment's metrics by run, as mean +- std over seeds.

``results/summary/ablation.csv`` is the long metrics table (:data:`~selfpanoptic.metrics.table.COLUMNS`)
with two more columns in front: ``experiment`` (``main`` for the runs without one, else the name
in ``experiments``) and ``seed`` (an entry of ``seeds``). Each experiment carries the rows of
every run of its tree, including the round 0 and oracle it shares with its seed's main runs, so
every row of the table is complete.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from ..errors import InputError
from .table import COLUMNS, read_metrics, run_order

__all__ = ["ABLATION_COLUMNS", "HEADLINE", "MAIN", "ablation_by_run", "collect_ablation",
           "format_mean_std", "gap_closed", "read_ablation"]

MAIN = "main"
"""The experiment label of the runs without an experiment."""

ABLATION_COLUMNS = ["experiment", "seed"] + COLUMNS

HEADLINE = (("semantic", "mIoU"), ("instance", "AP50"), ("panoptic", "PQ"))
"""(task, metric) of the ablation's tables, each over all classes."""


def collect_ablation(entries: list[tuple[str, int, str | Path]]) -> pd.DataFrame:
    """The ablation table from ``(experiment, seed, metrics CSV)`` entries (a score-* table each).

    Experiments keep the order in which they first appear; rows within one are sorted by seed,
    then run (round0, round1, ..., translated, oracle), then task.
    """
    frames = []
    for experiment, seed, path in entries:
        frame = read_metrics(path)
        frame.insert(0, "seed", int(seed))
        frame.insert(0, "experiment", str(experiment))
        frames.append(frame)
    if not frames:
        raise InputError("no metric tables given", fix="give one or more --table EXPERIMENT SEED CSV")
    table = pd.concat(frames, ignore_index=True)
    order = {name: i for i, name in enumerate(dict.fromkeys(table["experiment"]))}
    keys = pd.DataFrame({"v": table["experiment"].map(order), "s": table["seed"],
                         "r": table["run"].map(run_order), "t": table["task"]})
    table = table.loc[keys.sort_values(["v", "s", "r", "t"], kind="stable").index]
    return table.reset_index(drop=True)[ABLATION_COLUMNS]


def read_ablation(path: str | Path) -> pd.DataFrame:
    """An ablation table written by :func:`collect_ablation`; :class:`InputError` naming the file otherwise."""
    return read_metrics(path, ABLATION_COLUMNS, "ablation table", "`selfpanoptic ablation`")


def _sample_std(values: pd.Series) -> float:
    return float(values.std(ddof=1)) if len(values) > 1 else float("nan")


def ablation_by_run(table: pd.DataFrame, task: str, metric: str, cls: str = "all") -> pd.DataFrame:
    """Mean, sample std and seed count of one metric per experiment and run.

    Returns a frame indexed by experiment (table order) with columns ``(statistic, run)``:
    ``statistic`` in ``mean``, ``std``, ``n``; runs in order (round0, round1, ..., translated,
    oracle). The std of a single seed is NaN. Empty when the table lacks the metric.
    """
    rows = table[(table["task"] == task) & (table["metric"] == metric) & (table["class"] == cls)]
    if rows.empty:
        return pd.DataFrame()
    grouped = rows.groupby(["experiment", "run"], sort=False)["value"]
    stats = pd.DataFrame({"mean": grouped.mean(), "std": grouped.agg(_sample_std), "n": grouped.count()})
    wide = stats.unstack("run")
    runs = sorted(rows["run"].unique(), key=run_order)
    experiments = list(dict.fromkeys(rows["experiment"]))
    return wide.reindex(index=experiments, columns=pd.MultiIndex.from_product([["mean", "std", "n"], runs]))


def gap_closed(table: pd.DataFrame, last_round: str, task: str = "semantic", metric: str = "mIoU") -> pd.DataFrame:
    """Share (percent) of the round-0-to-oracle gap that run ``last_round`` (e.g. ``round2``) closes, per experiment.

    Per seed: ``100 * (last - round0) / (oracle - round0)``; then mean and sample std over seeds
    (columns ``mean``, ``std``, ``n``). NaN where a seed lacks the oracle or its gap is not positive.
    """
    rows = table[(table["task"] == task) & (table["metric"] == metric) & (table["class"] == "all")]
    wide = rows.pivot_table(index=["experiment", "seed"], columns="run", values="value", sort=False)
    if not {"round0", "oracle", last_round} <= set(wide.columns):
        return pd.DataFrame(columns=["mean", "std", "n"])
    gap = wide["oracle"] - wide["round0"]
    share = (100.0 * (wide[last_round] - wide["round0"]) / gap).where(gap > 0)
    grouped = share.groupby(level="experiment", sort=False)
    return pd.DataFrame({"mean": grouped.mean(), "std": grouped.agg(_sample_std), "n": grouped.count()})


def format_mean_std(mean: float, std: float, digits: int = 1) -> str:
    """``"19.7 ± 0.4"``; the mean alone when the std is NaN (one seed); ``-`` when the mean is NaN."""
    if mean is None or math.isnan(mean):
        return "-"
    if std is None or math.isnan(std):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"
