"""The report's ablation section: one row per experiment, mean +- std over seeds.

Made from ``results/summary/ablation.csv`` (:mod:`selfpanoptic.metrics.ablation`): a table per
headline metric (mIoU, AP50, PQ) with the runs as columns and the share of the round-0-to-oracle
mIoU gap the last round closes, the per-class IoU of the last round in a collapsible section, and
the multi-round curve of every experiment (:func:`plot_ablation_by_round`).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from .atomic import atomic_output  # noqa: E402
from .classes import CLASS_NAMES  # noqa: E402
from .metrics.ablation import HEADLINE, MAIN, ablation_by_run, format_mean_std, gap_closed  # noqa: E402
from .metrics.table import NAMED_RUNS, round_index, round_title  # noqa: E402

__all__ = ["ablation_section", "plot_ablation_by_round", "seeds_headline"]


def _last_round(table: pd.DataFrame) -> str | None:
    """The last round's run name (``round2``), None without rounds."""
    rounds = [run for run in table["run"].unique() if run not in NAMED_RUNS]
    return max(rounds, key=round_index) if rounds else None


def _metric_table(table: pd.DataFrame, task: str, metric: str, with_gap: bool) -> list[str]:
    wide = ablation_by_run(table, task, metric)
    if wide.empty:
        return []
    runs = list(wide["mean"].columns)
    last = _last_round(table)
    gap = gap_closed(table, last) if with_gap and last not in (None, "round0") else pd.DataFrame()
    header = ["experiment", "seeds"] + [round_title(r) for r in runs] + (["gap closed (%)"] if not gap.empty else [])
    lines = [f"**{metric}**", "", "| " + " | ".join(header) + " |", "|---|---:|" + "---:|" * (len(header) - 2)]
    for experiment, row in wide.iterrows():
        cells = [experiment, str(int(row["n"].max()))]
        cells += [format_mean_std(row[("mean", r)], row[("std", r)]) for r in runs]
        if not gap.empty:
            cells.append(format_mean_std(gap.loc[experiment, "mean"], gap.loc[experiment, "std"])
                         if experiment in gap.index else "-")
        lines.append("| " + " | ".join(cells) + " |")
    return lines + [""]


def _per_class(table: pd.DataFrame, last: str) -> list[str]:
    rows = table[(table["task"] == "semantic") & (table["metric"] == "IoU") & (table["run"].isin(["round0", last]))]
    if rows.empty:
        return []
    means = rows.groupby(["experiment", "run", "class"], sort=False)["value"].mean()
    experiments = list(dict.fromkeys(rows["experiment"]))
    header = ["class", "round 0"] + [f"{e}, {round_title(last)}" for e in experiments]
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    for name in CLASS_NAMES:
        base = means.get((experiments[0], "round0", name), float("nan"))
        cells = [name, format_mean_std(base, float("nan"))]
        cells += [format_mean_std(means.get((e, last, name), float("nan")), float("nan")) for e in experiments]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def seeds_headline(table: pd.DataFrame) -> list[str]:
    """The report's headline over seeds: mIoU, AP50 and PQ of the main runs by round, mean ± std
    over the seeds with their number n, and the share of the mIoU gap closed; none with one seed."""
    seeds = sorted(table.loc[table["experiment"] == MAIN, "seed"].unique())
    if len(seeds) < 2:
        return []
    main = table[table["experiment"] == MAIN]
    lines = [f"## Headline over seeds (n = {len(seeds)})", "",
             "The main runs of seeds " + ", ".join(str(s) for s in seeds) + ": mean ± sample standard deviation "
             "over the seeds (the tables below are the first seed's). One seed proves nothing: floating-point "
             "results differ between machines.", ""]
    for task, metric in HEADLINE:
        lines += _metric_table(main, task, metric, with_gap=metric == "mIoU")
    return lines


def ablation_section(table: pd.DataFrame, figure: str) -> list[str]:
    """The report's lines on the ablation table ``table`` (:func:`~selfpanoptic.metrics.ablation.collect_ablation`);
    ``figure``: the multi-round curve's path relative to the page."""
    seeds = sorted(table["seed"].unique())
    last = _last_round(table)
    parts = [
        "## Ablations: experiments", "",
        "One row per experiment (`main`: the runs without one; the others: `experiments`), mean ± standard "
        "deviation over the seeds " + ", ".join(str(s) for s in seeds)
        + " (`seeds`; one seed: the value alone). An experiment that changes only `selftrain` shares round 0 and "
        "the oracle with `main`; one that changes pretraining has its own. "
        "Gap closed: the share of the round-0-to-oracle mIoU gap the last round closes.", "",
    ]
    for task, metric in HEADLINE:
        parts += _metric_table(table, task, metric, with_gap=metric == "mIoU")
    if last not in (None, "round0"):
        parts += [f"<details><summary>IoU per class, round 0 and {round_title(last)} of each experiment (mean over seeds)"
                  "</summary>",
                  "", *_per_class(table, last), "", "</details>", ""]
    parts += [f"![ablation by round]({figure})", ""]
    return parts


def plot_ablation_by_round(table: pd.DataFrame, path: Path) -> None:
    """mIoU, AP50 and PQ against the round, one line per experiment (mean over seeds, std as error
    bars), the main runs' oracle dashed."""
    panels = [(task, metric) for task, metric in HEADLINE if not ablation_by_run(table, task, metric).empty]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 3.8), squeeze=False)
    for ax, (task, metric) in zip(axes[0], panels):
        wide = ablation_by_run(table, task, metric)
        rounds = [r for r in wide["mean"].columns if r not in NAMED_RUNS]
        for i, (experiment, row) in enumerate(wide.iterrows()):
            means = [row[("mean", r)] for r in rounds]
            stds = [0.0 if pd.isna(row[("std", r)]) else row[("std", r)] for r in rounds]
            ax.errorbar([round_index(r) for r in rounds], means, yerr=stds, marker="o", capsize=3, color=f"C{i}",
                        label=experiment)
        if "oracle" in wide["mean"].columns:
            ax.axhline(wide[("mean", "oracle")].iloc[0], color="grey", linestyle="--", linewidth=1, label="oracle")
        ax.set_title(metric)
        ax.set_xlabel("round")
        ax.set_xticks([round_index(r) for r in rounds])
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("score on target val (%)")
    axes[0][-1].legend(fontsize=8)
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)
