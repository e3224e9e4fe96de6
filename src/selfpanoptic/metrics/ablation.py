"""The ablation table: every variant's metrics by round, as mean +- std over seeds.

``results/summary/ablation.csv`` is the long metrics table (:data:`~selfpanoptic.metrics.table.COLUMNS`)
with two more columns in front: ``variant`` (``main`` for the config's own ``selftrain`` section,
else the name in ``experiments``) and ``seed`` (an entry of ``seeds``). Each variant carries its
seed's round 0 and oracle rows, which the variants share, so every row of the table is complete.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from ..errors import InputError
from .table import COLUMNS, read_metrics, round_order

__all__ = ["ABLATION_COLUMNS", "HEADLINE", "MAIN_VARIANT", "ablation_by_round", "collect_ablation",
           "format_mean_std", "gap_closed", "read_ablation"]

MAIN_VARIANT = "main"
"""The variant label of the config's own ``selftrain`` section."""

ABLATION_COLUMNS = ["variant", "seed"] + COLUMNS

HEADLINE = (("semantic", "mIoU"), ("instance", "AP50"), ("panoptic", "PQ"))
"""(task, metric) of the ablation's tables, each over all classes."""


def collect_ablation(entries: list[tuple[str, int, str | Path]]) -> pd.DataFrame:
    """The ablation table from ``(variant, seed, metrics CSV)`` entries (an evaluate-* table each).

    Variants keep the order in which they first appear; rows within a variant are sorted by seed,
    then round (0, 1, ..., translated, oracle), then task.
    """
    frames = []
    for variant, seed, path in entries:
        frame = read_metrics(path)
        frame.insert(0, "seed", int(seed))
        frame.insert(0, "variant", str(variant))
        frames.append(frame)
    if not frames:
        raise InputError("no metric tables given", fix="give one or more --table VARIANT SEED CSV")
    table = pd.concat(frames, ignore_index=True)
    order = {name: i for i, name in enumerate(dict.fromkeys(table["variant"]))}
    keys = pd.DataFrame({"v": table["variant"].map(order), "s": table["seed"],
                         "r": table["round"].map(round_order), "t": table["task"]})
    table = table.loc[keys.sort_values(["v", "s", "r", "t"], kind="stable").index]
    return table.reset_index(drop=True)[ABLATION_COLUMNS]


def read_ablation(path: str | Path) -> pd.DataFrame:
    """An ablation table written by :func:`collect_ablation`; :class:`InputError` naming the file otherwise."""
    return read_metrics(path, ABLATION_COLUMNS, "ablation table", "`selfpanoptic ablation`")


def _sample_std(values: pd.Series) -> float:
    return float(values.std(ddof=1)) if len(values) > 1 else float("nan")


def ablation_by_round(table: pd.DataFrame, task: str, metric: str, cls: str = "all") -> pd.DataFrame:
    """Mean, sample std and seed count of one metric per variant and round.

    Returns a frame indexed by variant (table order) with columns ``(statistic, round)``:
    ``statistic`` in ``mean``, ``std``, ``n``; rounds in order (0, 1, ..., translated, oracle).
    The std of a single seed is NaN. Empty when the table lacks the metric.
    """
    rows = table[(table["task"] == task) & (table["metric"] == metric) & (table["class"] == cls)]
    if rows.empty:
        return pd.DataFrame()
    grouped = rows.groupby(["variant", "round"], sort=False)["value"]
    stats = pd.DataFrame({"mean": grouped.mean(), "std": grouped.agg(_sample_std), "n": grouped.count()})
    wide = stats.unstack("round")
    rounds = sorted(rows["round"].unique(), key=round_order)
    variants = list(dict.fromkeys(rows["variant"]))
    return wide.reindex(index=variants, columns=pd.MultiIndex.from_product([["mean", "std", "n"], rounds]))


def gap_closed(table: pd.DataFrame, last_round: str, task: str = "semantic", metric: str = "mIoU") -> pd.DataFrame:
    """Share (percent) of the round-0-to-oracle gap that ``last_round`` closes, per variant.

    Per seed: ``100 * (last - round0) / (oracle - round0)``; then mean and sample std over seeds
    (columns ``mean``, ``std``, ``n``). NaN where a seed lacks the oracle or its gap is not positive.
    """
    rows = table[(table["task"] == task) & (table["metric"] == metric) & (table["class"] == "all")]
    wide = rows.pivot_table(index=["variant", "seed"], columns="round", values="value", sort=False)
    if not {"0", "oracle", last_round} <= set(wide.columns):
        return pd.DataFrame(columns=["mean", "std", "n"])
    gap = wide["oracle"] - wide["0"]
    share = (100.0 * (wide[last_round] - wide["0"]) / gap).where(gap > 0)
    grouped = share.groupby(level="variant", sort=False)
    return pd.DataFrame({"mean": grouped.mean(), "std": grouped.agg(_sample_std), "n": grouped.count()})


def format_mean_std(mean: float, std: float, digits: int = 1) -> str:
    """``"19.7 ± 0.4"``; the mean alone when the std is NaN (one seed); ``-`` when the mean is NaN."""
    if mean is None or math.isnan(mean):
        return "-"
    if std is None or math.isnan(std):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"
