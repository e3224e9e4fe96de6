"""Markdown tables comparing runs of the same workflow with different options (an ablation).

Usage (from the repository root, after running each config of configs/ablations/):

    python scripts/ablation_table.py results-ablation/*/

Each argument is a run's results folder (its `summary/metrics.csv` is read); the row label is the
folder's name. Prints, per run, mIoU (19 classes), PQ and AP50 of every round, then the per-class
IoU of the last round. Nothing is typed in by hand: every number comes from the metrics files.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from selfpanoptic.classes import CLASS_NAMES
from selfpanoptic.errors import InputError
from selfpanoptic.metrics.table import read_metrics, round_order

HEADLINE = [("semantic", "mIoU", "all", "mIoU"), ("panoptic", "PQ", "all", "PQ"), ("instance", "AP50", "all", "AP50")]


def _value(table: pd.DataFrame, task: str, metric: str, cls: str, run_round: str) -> float:
    rows = table[(table["task"] == task) & (table["metric"] == metric) & (table["class"] == cls)
                 & (table["round"] == run_round)]
    return float(rows["value"].iloc[0]) if len(rows) else float("nan")


def ablation_tables(folders: list[Path]) -> str:
    """The two Markdown tables (headline by round, per-class IoU of the last round) of ``folders``."""
    tables = {folder.name: read_metrics(folder / "summary" / "metrics.csv") for folder in folders}
    rounds = sorted({r for t in tables.values() for r in t["round"].unique() if r != "oracle"}, key=round_order)
    header = ["run"] + [f"{label} r{r}" for _, _, _, label in HEADLINE for r in rounds]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, table in tables.items():
        cells = [f"{_value(table, task, metric, cls, r):.1f}" for task, metric, cls, _ in HEADLINE for r in rounds]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    last = rounds[-1]
    lines += ["", f"IoU per class, round {last}:", "", "| run | " + " | ".join(CLASS_NAMES) + " |",
              "|" + "---|" * (len(CLASS_NAMES) + 1)]
    for name, table in tables.items():
        cells = [f"{_value(table, 'semantic', 'IoU', cls, last):.1f}" for cls in CLASS_NAMES]
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
