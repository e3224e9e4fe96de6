"""Markdown tables of a run over several seeds: every seed's row, then mean +- std, per experiment.

Usage (from the repository root):

    python scripts/seeds_table.py results-encoders/            # metrics, one table per experiment
    python scripts/seeds_table.py results-encoders/ --audit    # and the pseudo-label audits

The argument is a results folder of a finished run (``summary/ablation.csv``). Each metrics cell
is ``mIoU / AP50 / PQ`` (percent) of one run; the last column is the share of the round-0-to-oracle
mIoU gap that the last round closes. With ``--audit``, a second table gives per experiment (mean
+- std over seeds) what each self-training round learnt from, read from its
``round<r>/pseudo/audit.txt``: the precision of the kept semantic pseudo-labels, the share of
labelled pixels left ignored, and the precision of the pseudo instances (IoU >= 0.5). Every
number comes from those files.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from selfpanoptic.errors import InputError
from selfpanoptic.metrics.ablation import HEADLINE, format_mean_std, read_ablation
from selfpanoptic.metrics.table import NAMED_RUNS, round_title, run_order
from selfpanoptic.runs import tree_prefix

AUDIT_PATTERNS = {
    "kept precision": r"all pixels: precision of kept labels\s+([0-9.]+) %",
    "ignored": r"ignored \(below threshold\): ([0-9.]+) %",
    "instance precision": r"^\s+all\s+\d+\s+\d+\s+\d+\s+([0-9.]+)\s*$",
}
"""What the audit table reads from each ``audit.txt``: a percentage per pattern (NaN when absent)."""


def seed_rows(table: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Per experiment: a frame indexed by seed, columns ``(metric, run)`` for the headline metrics."""
    rows = table[(table["class"] == "all") & table.apply(lambda r: (r["task"], r["metric"]) in HEADLINE, axis=1)]
    frames = {}
    for experiment in dict.fromkeys(rows["experiment"]):
        own = rows[rows["experiment"] == experiment]
        wide = own.pivot_table(index="seed", columns=["metric", "run"], values="value", sort=False)
        runs = sorted(own["run"].unique(), key=run_order)
        metrics = [metric for _, metric in HEADLINE if metric in wide.columns.get_level_values(0)]
        frames[experiment] = wide.reindex(columns=pd.MultiIndex.from_product([metrics, runs]))
    return frames


def gap_share(wide: pd.DataFrame) -> pd.Series:
    """Per seed, percent of the round-0-to-oracle mIoU gap that the last round closes (NaN without one)."""
    runs = list(dict.fromkeys(wide.columns.get_level_values(1)))
    rounds = [run for run in runs if run not in NAMED_RUNS and run != "round0"]
    if not rounds or "oracle" not in runs or "mIoU" not in wide.columns.get_level_values(0):
        return pd.Series(np.nan, index=wide.index)
    miou = wide["mIoU"]
    gap = miou["oracle"] - miou["round0"]
    return (100.0 * (miou[rounds[-1]] - miou["round0"]) / gap).where(gap > 0)


def metrics_markdown(experiment: str, wide: pd.DataFrame) -> list[str]:
    """One experiment's table: a row per seed, then the mean +- std row."""
    metrics = list(dict.fromkeys(wide.columns.get_level_values(0)))
    runs = list(dict.fromkeys(wide.columns.get_level_values(1)))
    gap = gap_share(wide)
    lines = [f"**{experiment}** ({' / '.join(metrics)})", "",
             "| seed | " + " | ".join(round_title(r) for r in runs) + " | gap closed |",
             "|---|" + "---|" * len(runs) + "---:|"]
    for seed, row in wide.iterrows():
        cells = [" / ".join(f"{row[(m, r)]:.1f}" for m in metrics) for r in runs]
        lines.append(f"| {seed} | " + " | ".join(cells) + f" | {gap[seed]:.1f} % |")
    mean, std = wide.mean(), wide.std(ddof=1)
    cells = [" / ".join(format_mean_std(mean[(m, r)], std[(m, r)]) for m in metrics) for r in runs]
    lines.append(f"| mean ± std (n={len(wide)}) | " + " | ".join(cells)
                 + f" | {format_mean_std(gap.mean(), gap.std(ddof=1))} % |")
    return lines + [""]


def audit_values(path: Path) -> dict[str, float]:
    """The percentages of :data:`AUDIT_PATTERNS` in one ``audit.txt``."""
    text = path.read_text()
    found = {name: re.search(pattern, text, re.MULTILINE) for name, pattern in AUDIT_PATTERNS.items()}
    return {name: float(match[1]) if match else np.nan for name, match in found.items()}


def audit_markdown(results: Path, table: pd.DataFrame) -> list[str]:
    """Mean +- std over seeds of each round's pseudo-label audit, a row per experiment."""
    seeds = list(dict.fromkeys(table["seed"]))
    rounds = sorted({run for run in table["run"] if run not in NAMED_RUNS and run != "round0"}, key=run_order)
    header = [f"{name} {round_title(r)}" for name in AUDIT_PATTERNS for r in rounds]
    lines = ["| experiment | n | " + " | ".join(header) + " |", "|---|---:|" + "---:|" * len(header)]
    for experiment in dict.fromkeys(table["experiment"]):
        values = []
        for seed in seeds:
            prefix = tree_prefix(seed, None if experiment == "main" else experiment, seeds[0])
            files = {r: results / f"{prefix}{r}" / "pseudo" / "audit.txt" for r in rounds}
            if all(p.is_file() for p in files.values()):
                values.append({(name, r): v for r, p in files.items() for name, v in audit_values(p).items()})
        if not values:
            continue
        frame = pd.DataFrame(values)
        cells = [format_mean_std(frame[(n, r)].mean(), frame[(n, r)].std(ddof=1)) for n in AUDIT_PATTERNS for r in rounds]
        lines.append(f"| {experiment} | {len(frame)} | " + " | ".join(cells) + " |")
    return lines + [""]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", type=Path, help="a results folder with summary/ablation.csv")
    parser.add_argument("--audit", action="store_true", help="add the pseudo-label audit table")
    args = parser.parse_args(argv)
    path = args.results / "summary" / "ablation.csv"
    try:
        if not path.is_file():
            raise InputError("not found", path, "give the results folder of a finished run (its summary/ablation.csv)")
        table = read_ablation(path)
    except InputError as err:
        print(f"seeds_table: {err}", file=sys.stderr)
        return 2
    for experiment, wide in seed_rows(table).items():
        print("\n".join(metrics_markdown(experiment, wide)))
    if args.audit:
        print("\n".join(audit_markdown(args.results, table)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
