"""Markdown tables comparing runs of the same workflow with different options (an ablation).

Usage (from the repository root, after running the configs of configs/ablations/):

    python scripts/ablation_table.py results-ablation/*/

Each argument is a run's results folder (its ``summary/metrics.csv`` is read). Folders named
``<variant>-seed<k>`` are further seeds of ``<variant>`` (the folder ``<variant>`` itself is the
config's own seed, 0): a variant's cells are then ``mean ± std`` over its seeds (sample standard
deviation), with the number of seeds in the ``n`` column. Prints mIoU (19 classes), PQ and AP50
of every round, the per-class IoU of the last round, and what the pseudo-label audit of each
round says (``round<r>/pseudo/audit.txt``: precision of the kept semantic pseudo-labels, share of
pixels ignored, precision of the pseudo instances). Every number comes from those files.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
from pathlib import Path

import pandas as pd

from selfpanoptic.classes import CLASS_NAMES
from selfpanoptic.errors import InputError
from selfpanoptic.metrics.table import read_metrics, round_order

HEADLINE = [("semantic", "mIoU", "all", "mIoU"), ("panoptic", "PQ", "all", "PQ"), ("instance", "AP50", "all", "AP50")]


def variant_of(folder: Path) -> str:
    """The variant a results folder belongs to: its name without a ``-seed<k>`` suffix."""
    return re.sub(r"-seed\d+$", "", folder.name)


def _value(table: pd.DataFrame, task: str, metric: str, cls: str, run_round: str) -> float:
    rows = table[(table["task"] == task) & (table["metric"] == metric) & (table["class"] == cls)
                 & (table["round"] == run_round)]
    return float(rows["value"].iloc[0]) if len(rows) else float("nan")


_AUDIT = {
    "kept prec": re.compile(r"precision of kept labels ([\d.]+) %"),
    "ignored": re.compile(r"ignored \(below threshold\): ([\d.]+) %"),
    "instance prec": re.compile(r"^  all\s+\d+\s+\d+\s+\d+\s+([\d.]+)$", re.MULTILINE),
}


def audit_numbers(path: Path) -> dict[str, float]:
    """The headline numbers of a round's pseudo-label audit (NaN for what it does not hold)."""
    text = path.read_text() if path.is_file() else ""
    found = {name: pattern.search(text) for name, pattern in _AUDIT.items()}
    return {name: float(match.group(1)) if match else float("nan") for name, match in found.items()}


def _cell(values: list[float]) -> str:
    values = [v for v in values if v == v]  # NaN: not measured
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.1f}"
    return f"{statistics.mean(values):.1f} ± {statistics.stdev(values):.1f}"


def ablation_tables(folders: list[Path]) -> str:
    """The two Markdown tables (headline by round, per-class IoU of the last round) of ``folders``."""
    variants: dict[str, list[pd.DataFrame]] = {}
    audits: dict[str, list[Path]] = {}
    for folder in folders:
        variants.setdefault(variant_of(folder), []).append(read_metrics(folder / "summary" / "metrics.csv"))
        audits.setdefault(variant_of(folder), []).append(folder)
    rounds = sorted({r for tables in variants.values() for t in tables for r in t["round"].unique() if r != "oracle"},
                    key=round_order)
    header = ["run", "n"] + [f"{label} r{r}" for _, _, _, label in HEADLINE for r in rounds]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, tables in variants.items():
        cells = [_cell([_value(t, task, metric, cls, r) for t in tables]) for task, metric, cls, _ in HEADLINE
                 for r in rounds]
        lines.append(f"| {name} | {len(tables)} | " + " | ".join(cells) + " |")
    last = rounds[-1]
    lines += ["", f"IoU per class, round {last} (mean over seeds):", "",
              "| run | " + " | ".join(CLASS_NAMES) + " |", "|" + "---|" * (len(CLASS_NAMES) + 1)]
    for name, tables in variants.items():
        cells = [f"{statistics.mean(_value(t, 'semantic', 'IoU', cls, last) for t in tables):.1f}"
                 for cls in CLASS_NAMES]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    pseudo_rounds = [r for r in rounds if r != "0"]
    header = ["run"] + [f"{what} r{r}" for what in _AUDIT for r in pseudo_rounds]
    lines += ["", "Pseudo-labels each round starts from (audit, %):", "", "| " + " | ".join(header) + " |",
              "|" + "---|" * len(header)]
    for name, runs in audits.items():
        numbers = {r: [audit_numbers(f / f"round{r}" / "pseudo" / "audit.txt") for f in runs] for r in pseudo_rounds}
        cells = [_cell([n[what] for n in numbers[r]]) for what in _AUDIT for r in pseudo_rounds]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path, help="results folders of the runs to compare")
    args = parser.parse_args(argv)
    try:
        print(ablation_tables(args.folders))
    except (InputError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
