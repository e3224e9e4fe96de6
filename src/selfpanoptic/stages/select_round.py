"""``selfpanoptic select-round``: the round a label-free score chooses (``selftrain.rounds: auto``).

Reads the label-free tables (``score-label-free``) of round 0 and the rounds of one tree, visits the
rounds in order keeping the best score, stops after ``selection.patience`` rounds without a better
one (:func:`~selfpanoptic.metrics.label_free.select_round`), and writes the choice as JSON:
``score``, ``higher_is_better``, ``patience``, ``scores`` (round -> value), ``chosen`` (a run
name) and ``folder`` (the chosen run's folder under the results folder).
"""

from __future__ import annotations

import argparse

from .common import settings, settings_parent

HELP = "choose a round by a label-free score (selftrain.rounds: auto)"
PARENTS = [settings_parent("selftrain")]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--round", nargs=2, action="append", required=True, metavar=("FOLDER", "CSV"),
                        help="a round's folder (relative to the results folder) and its label-free table, "
                        "round 0 first, then rounds 1, 2, ... in order (repeatable)")
    parser.add_argument("--out", required=True, help="JSON file to write")


def run(args: argparse.Namespace) -> None:
    import json
    import math

    from ..atomic import atomic_write_text
    from ..errors import InputError
    from ..metrics.label_free import HIGHER_IS_BETTER, select_round
    from ..metrics.table import read_metrics

    selection = settings(args, "selftrain")["selection"]
    score, patience = selection["score"], selection["patience"]
    names, folders, values = [], [], []
    for index, (folder, path) in enumerate(args.round):
        table = read_metrics(path)
        rows = table[(table["task"] == "label_free") & (table["metric"] == score) & (table["class"] == "all")]
        if len(rows) != 1 or rows["run"].iloc[0] != f"round{index}":
            raise InputError(f"expected the label-free score {score} of round{index} (--round number {index + 1})",
                             path, "give the label-free tables of round0, round1, ... in order "
                             "(selfpanoptic score-label-free)")
        names.append(rows["run"].iloc[0])
        folders.append(folder)
        values.append(float(rows["value"].iloc[0]))
    chosen = select_round(values, HIGHER_IS_BETTER[score], patience)
    result = {"score": score, "higher_is_better": HIGHER_IS_BETTER[score], "patience": patience,
              "scores": {name: (None if math.isnan(v) else v) for name, v in zip(names, values)},
              "chosen": names[chosen], "folder": folders[chosen]}
    atomic_write_text(args.out, json.dumps(result, indent=2) + "\n")
    print(f"{score}: " + ", ".join(f"{n} {v:.2f}" for n, v in zip(names, values)) + f" -> {names[chosen]}")

