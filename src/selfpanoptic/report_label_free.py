"""The report's label-free sections: the scores of each run on target train, how well each ranks
the runs of the ablation (Spearman's rho with val mIoU and PQ), and what choosing the round by it
gives (:mod:`selfpanoptic.metrics.label_free`)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .metrics.ablation import format_mean_std
from .metrics.label_free import HIGHER_IS_BETTER, SCORES, round_selection, score_correlations
from .metrics.table import round_title, run_order

__all__ = ["label_free_lines", "label_free_ablation_lines", "selected_round_lines"]


def label_free_lines(table: pd.DataFrame) -> list[str]:
    """Lines of the label-free scores of the metrics table's runs (none without them)."""
    rows = table[(table["task"] == "label_free") & (table["class"] == "all")]
    if rows.empty:
        return []
    wide = rows.pivot_table(index="metric", columns="run", values="value", aggfunc="first", dropna=False)
    runs = sorted(wide.columns, key=run_order)
    header = "| score (target train) | " + " | ".join(round_title(r) for r in runs) + " |"
    lines = ["## Label-free scores", "",
             "Computed on the target train images without their labels (docs/method.md, \"Choosing a round "
             "without target labels\"), in percent; entropy and class distance are better when lower.", "",
             header, "|---|" + "---:|" * len(runs)]
    for score in SCORES:
        if score in wide.index:
            cells = ["–" if pd.isna(wide.loc[score, r]) else f"{wide.loc[score, r]:.1f}" for r in runs]
            lines.append(f"| {score} | " + " | ".join(cells) + " |")
    return lines + [""]


def label_free_ablation_lines(ablation: pd.DataFrame, patience: int = 1) -> list[str]:
    """Lines on how the label-free scores rank and choose the ablation's rounds (none without them)."""
    correlations = score_correlations(ablation)
    if correlations.empty:
        return []
    rhos = [c for c in correlations.columns if c.startswith("rho_")]
    lines = ["## Label-free scores against the val scores", "",
             "Spearman's rank correlation between each label-free score (target train, no labels) and the "
             "val score, over every (experiment, seed, round) of the ablation (round 0 once per seed, the "
             "oracle left out). A score that ranks the runs as val does has rho near +1 (near -1 for "
             "entropy and class distance, which are better when lower).", "",
             "| score | runs | " + " | ".join(f"rho with {c.removeprefix('rho_')}" for c in rhos) + " |",
             "|---|---:|" + "---:|" * len(rhos)]
    for _, row in correlations.iterrows():
        lines.append(f"| {row['score']} | {row['runs']} | " + " | ".join(f"{row[c]:+.2f}" for c in rhos) + " |")
    lines += [""] + _selection_lines(round_selection(ablation, patience), patience)
    return lines


def _selection_lines(selection: pd.DataFrame, patience: int) -> list[str]:
    """The val mIoU and PQ of the round each score chooses, mean +- std over (experiment, seed)."""
    if selection.empty:
        return []
    lines = [f"Choosing the round by each score (stopping after {patience} round(s) without improvement), "
             "mean ± std over every (experiment, seed): the chosen round's val mIoU and PQ, against always "
             "taking the last round and against the best round (chosen with the val labels).", "",
             "| score | direction | mean chosen round | mIoU | PQ | last round: mIoU | last round: PQ | best round: mIoU |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for score, rows in selection.groupby("score", sort=False):
        cells = [score, "higher" if HIGHER_IS_BETTER[score] else "lower", f"{rows['chosen'].mean():.2f}"]
        cells += [format_mean_std(rows[c].mean(), rows[c].std(ddof=1) if len(rows) > 1 else float("nan"))
                  for c in ("mIoU", "PQ", "last_mIoU", "last_PQ", "best_mIoU")]
        lines.append("| " + " | ".join(cells) + " |")
    return lines + [""]


def selected_round_lines(path) -> list[str]:
    """Lines naming the round ``select-round`` chose (its JSON file ``path``); :class:`InputError`
    naming the file when it is not one."""
    import json

    from .errors import InputError

    try:
        chosen = json.loads(Path(path).read_text())
        scores = ", ".join(f"{round_title(run)} {value:.1f}" if value is not None else f"{round_title(run)} –"
                           for run, value in chosen["scores"].items())
        line = (f"**Round chosen without target labels** (`selftrain.rounds: auto`): **{round_title(chosen['chosen'])}**"
                f" (`{chosen['folder']}`), by `{chosen['score']}` ({'higher' if chosen['higher_is_better'] else 'lower'}"
                f" is better; patience {chosen['patience']}): {scores}.")
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise InputError(f"not a round choice of select-round ({type(exc).__name__})", path,
                         "give results/summary/selected_round.json as written by selfpanoptic select-round") from None
    return [line, ""]
