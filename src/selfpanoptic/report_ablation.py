"""The report's ablation section: one row per self-training variant, mean +- std over seeds.

Made from ``results/summary/ablation.csv`` (:mod:`selfpanoptic.metrics.ablation`): a table per
headline metric (mIoU, AP50, PQ) with the rounds as columns and the share of the round-0-to-oracle
mIoU gap the last round closes, the per-class IoU of the last round in a collapsible section, and
the multi-round curve of every variant (:func:`plot_ablation_by_round`).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from .atomic import atomic_output  # noqa: E402
from .classes import CLASS_NAMES  # noqa: E402
from .metrics.ablation import HEADLINE, ablation_by_round, format_mean_std, gap_closed  # noqa: E402
from .metrics.table import NAMED_RUNS  # noqa: E402

__all__ = ["ablation_section", "plot_ablation_by_round"]


def _title(run: str) -> str:
    return run if run in NAMED_RUNS else f"round {run}"


def _last_round(table: pd.DataFrame) -> str | None:
    rounds = [int(r) for r in table["round"].unique() if r not in NAMED_RUNS]
    return str(max(rounds)) if rounds else None


def _metric_table(table: pd.DataFrame, task: str, metric: str, with_gap: bool) -> list[str]:
    wide = ablation_by_round(table, task, metric)
    if wide.empty:
        return []
    rounds = list(wide["mean"].columns)
    last = _last_round(table)
    gap = gap_closed(table, last) if with_gap and last not in (None, "0") else pd.DataFrame()
    header = ["variant", "seeds"] + [_title(r) for r in rounds] + (["gap closed (%)"] if not gap.empty else [])
    lines = [f"**{metric}**", "", "| " + " | ".join(header) + " |", "|---|---:|" + "---:|" * (len(header) - 2)]
    for variant, row in wide.iterrows():
        cells = [variant, str(int(row["n"].max()))]
        cells += [format_mean_std(row[("mean", r)], row[("std", r)]) for r in rounds]
        if not gap.empty:
            cells.append(format_mean_std(gap.loc[variant, "mean"], gap.loc[variant, "std"])
                         if variant in gap.index else "-")
        lines.append("| " + " | ".join(cells) + " |")
    return lines + [""]


def _per_class(table: pd.DataFrame, last: str) -> list[str]:
    rows = table[(table["task"] == "semantic") & (table["metric"] == "IoU") & (table["round"].isin(["0", last]))]
    if rows.empty:
        return []
    means = rows.groupby(["variant", "round", "class"], sort=False)["value"].mean()
    variants = list(dict.fromkeys(rows["variant"]))
    header = ["class", "round 0"] + [f"{v}, round {last}" for v in variants]
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    for name in CLASS_NAMES:
        base = means.get((variants[0], "0", name), float("nan"))
        cells = [name, format_mean_std(base, float("nan"))]
        cells += [format_mean_std(means.get((v, last, name), float("nan")), float("nan")) for v in variants]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def ablation_section(table: pd.DataFrame, figure: str) -> list[str]:
    """The report's lines on the ablation table ``table`` (:func:`~selfpanoptic.metrics.ablation.collect_ablation`);
    ``figure``: the multi-round curve's path relative to the page."""
    seeds = sorted(table["seed"].unique())
    last = _last_round(table)
    parts = [
        "## Ablations: self-training variants", "",
        "One row per variant of the self-training settings (`main`: the config's `selftrain` section; the others: "
        "`experiments`), mean ± standard deviation over the seeds " + ", ".join(str(s) for s in seeds)
        + " (`seeds`; one seed: the value alone). Round 0 and the oracle are shared by all variants of a seed. "
        "Gap closed: the share of the round-0-to-oracle mIoU gap the last round closes.", "",
    ]
    for task, metric in HEADLINE:
        parts += _metric_table(table, task, metric, with_gap=metric == "mIoU")
    if last not in (None, "0"):
        parts += [f"<details><summary>IoU per class, round 0 and round {last} of each variant (mean over seeds)</summary>",
                  "", *_per_class(table, last), "", "</details>", ""]
    parts += [f"![ablation by round]({figure})", ""]
    return parts


def plot_ablation_by_round(table: pd.DataFrame, path: Path) -> None:
    """mIoU, AP50 and PQ against the round, one line per variant (mean over seeds, std as error
    bars), the oracle dashed."""
    panels = [(task, metric) for task, metric in HEADLINE if not ablation_by_round(table, task, metric).empty]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 3.8), squeeze=False)
    for ax, (task, metric) in zip(axes[0], panels):
        wide = ablation_by_round(table, task, metric)
        rounds = [r for r in wide["mean"].columns if r not in NAMED_RUNS]
        for i, (variant, row) in enumerate(wide.iterrows()):
            means = [row[("mean", r)] for r in rounds]
            stds = [0.0 if pd.isna(row[("std", r)]) else row[("std", r)] for r in rounds]
            ax.errorbar([int(r) for r in rounds], means, yerr=stds, marker="o", capsize=3, color=f"C{i}", label=variant)
        if "oracle" in wide["mean"].columns:
            ax.axhline(wide[("mean", "oracle")].iloc[0], color="grey", linestyle="--", linewidth=1, label="oracle")
        ax.set_title(metric)
        ax.set_xlabel("round")
        ax.set_xticks([int(r) for r in rounds])
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("score on target val (%)")
    axes[0][-1].legend(fontsize=8)
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)
