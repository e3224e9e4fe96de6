"""Markdown tables of label-to-image translation runs: what the translated source does to round 0
(and the rounds after it), next to its label fidelity.

Usage (from the repository root):

    python scripts/translation_table.py results/                      # one run
    python scripts/translation_table.py variants/*/                   # several, one row each

Each argument is a run's results folder (``summary/metrics.csv`` and
``translation/fidelity.csv``), or a folder holding those two files directly (a copy kept per
variant); the row is named after the folder. Columns: the label fidelity (the labelling round's
model on real and on translated source images, and the oracle's on translated ones), mIoU of
round 0, of the run ``translated`` and the share of the round-0-to-oracle gap it closes, AP50 and
PQ of both, mIoU of rounds 1 and 2, AP50 and PQ of round 2. A second table gives the IoU per class of round 0, the
run ``translated`` and the oracle, for the first folder. Every number comes from those files.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from selfpanoptic.classes import CLASS_NAMES
from selfpanoptic.errors import InputError
from selfpanoptic.metrics.table import read_metrics


def _files(folder: Path) -> tuple[Path, Path]:
    """(metrics CSV, fidelity CSV) of a results folder or of a flat copy of them."""
    nested = (folder / "summary" / "metrics.csv", folder / "translation" / "fidelity.csv")
    flat = (folder / "metrics.csv", folder / "fidelity.csv")
    for pair in (nested, flat):
        if all(p.is_file() for p in pair):
            return pair
    raise InputError("holds no metrics.csv and fidelity.csv of a translation run", folder,
                     "give a results folder of a run with mixing.translated > 0, or a copy of those two files")


def _value(table: pd.DataFrame, task: str, metric: str, run: str, cls: str = "all") -> float:
    rows = table[(table["task"] == task) & (table["metric"] == metric) & (table["class"] == cls) & (table["run"] == run)]
    return float(rows["value"].iloc[0]) if len(rows) else float("nan")


def row(folder: Path) -> dict[str, float | str]:
    """One translation run's cells."""
    metrics_path, fidelity_path = _files(folder)
    metrics = read_metrics(metrics_path)
    fidelity = pd.read_csv(fidelity_path).set_index("class").loc["mean"]
    r0, translated, oracle = (_value(metrics, "semantic", "mIoU", run) for run in ("round0", "translated", "oracle"))
    return {
        "run": folder.name, "fidelity real": fidelity["real_iou"], "fidelity translated": fidelity["translated_iou"],
        "ratio %": fidelity["ratio"], "oracle on translated": fidelity.get("oracle_translated_iou", float("nan")),
        "mIoU r0": r0, "mIoU translated": translated, "gap closed %": 100.0 * (translated - r0) / (oracle - r0),
        "AP50 r0": _value(metrics, "instance", "AP50", "round0"), "AP50 translated": _value(metrics, "instance", "AP50", "translated"),
        "PQ r0": _value(metrics, "panoptic", "PQ", "round0"), "PQ translated": _value(metrics, "panoptic", "PQ", "translated"),
        "mIoU r1": _value(metrics, "semantic", "mIoU", "round1"), "mIoU r2": _value(metrics, "semantic", "mIoU", "round2"),
        "AP50 r2": _value(metrics, "instance", "AP50", "round2"), "PQ r2": _value(metrics, "panoptic", "PQ", "round2"),
    }


def markdown(frame: pd.DataFrame) -> str:
    lines = ["| " + " | ".join(frame.columns) + " |", "|---|" + "---:|" * (len(frame.columns) - 1)]
    for _, r in frame.iterrows():
        cells = [str(r.iloc[0])] + ["–" if pd.isna(v) else f"{v:.1f}" for v in r.iloc[1:]]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def per_class(folder: Path) -> pd.DataFrame:
    """IoU per class of round 0, the run ``translated`` and the oracle (columns), one row per class."""
    metrics = read_metrics(_files(folder)[0])
    runs = {"round 0": "round0", "translated": "translated", "oracle": "oracle"}
    return pd.DataFrame({"class": list(CLASS_NAMES),
                         **{name: [_value(metrics, "semantic", "IoU", run, c) for c in CLASS_NAMES]
                            for name, run in runs.items()}})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="+", type=Path)
    args = parser.parse_args(argv)
    try:
        frame = pd.DataFrame([row(folder) for folder in args.folders])
        classes = per_class(args.folders[0])
    except InputError as err:
        print(f"translation_table: {err}", file=sys.stderr)
        return 2
    print(markdown(frame))
    print()
    print(f"IoU per class ({args.folders[0].name}):")
    print()
    print(markdown(classes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
