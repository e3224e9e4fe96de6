"""``selfpanoptic score-panoptic``: PQ, SQ, RQ and PQ-dagger of a fused run, as metric-table rows.

Over the 19 classes (``all``, ``things``, ``stuff`` and per class) and over the 16 of the Synthia
protocol (``all16`` ...).
"""

from __future__ import annotations

import argparse

HELP = "PQ/SQ/RQ/PQ-dagger of a fused run as metric rows"
PARENTS: list = []  # no progress bar: the evaluator reads PNGs in worker threads


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--prediction", required=True, help="folder written by fuse-panoptic")
    parser.add_argument("--gt-json-file", required=True, help="panoptic ground-truth JSON")
    parser.add_argument("--gt-folder", required=True, help="folder of the panoptic ground-truth PNGs")
    parser.add_argument("--run", required=True, help="run name for the table (round0, round1, ..., translated, gan_samples, gan_encoder, gan_inversion, oracle)")
    parser.add_argument("--out", required=True, help="metrics CSV to write")


def run(args: argparse.Namespace) -> None:
    from pathlib import Path

    from ..atomic import atomic_write_text
    from ..classes import SYNTHIA16_LABEL_IDS
    from ..errors import InputError
    from ..metrics.panoptic_files import evaluate_panoptic_folders
    from ..metrics.table import metric_frame, percent

    prediction = Path(args.prediction)
    if not (prediction / "panoptic.json").is_file():
        raise InputError("--prediction must be the folder fuse-panoptic writes (with panoptic.json and panoptic/)",
                         prediction, "give results/<run>/panoptic")
    rows = []
    for suffix, subset in {"": None, "16": SYNTHIA16_LABEL_IDS}.items():
        try:
            result = evaluate_panoptic_folders(
                args.gt_json_file, args.gt_folder, prediction / "panoptic.json", prediction / "panoptic", subset
            )
        except ValueError as err:  # the evaluator names the file whose content does not fit
            raise InputError(str(err), fix="fuse the predictions of the split the ground truth covers") from None
        for group in ("All", "Things", "Stuff"):
            for metric in ("pq", "sq", "rq"):
                rows.append((args.run, "panoptic", metric.upper(), f"{group.lower()}{suffix}", percent(result[group][metric])))
        rows.append((args.run, "panoptic", "PQ_dagger", f"all{suffix}", percent(result["PQ_dagger"])))
        if not suffix:
            for name, scores in result["per_class"].items():
                for metric in ("pq", "sq", "rq"):
                    rows.append((args.run, "panoptic", metric.upper(), name, percent(scores[metric])))
    table = metric_frame(rows)
    atomic_write_text(args.out, table.to_csv(index=False))
    print(table[table["class"].str.startswith(("all", "things", "stuff"))].to_string(index=False))
