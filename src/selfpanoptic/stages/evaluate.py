"""``selfpanoptic evaluate TASK``: evaluators that take the official Cityscapes tools' arguments."""

from __future__ import annotations

import argparse

HELP = "evaluators with the official tools' arguments"
PARENTS: list = []


def add_arguments(parser: argparse.ArgumentParser) -> None:
    tasks = parser.add_subparsers(dest="evaluator", required=True, metavar="TASK")
    panoptic = tasks.add_parser("panoptic", help="panoptic quality, like cityscapesscripts' evalPanopticSemanticLabeling")
    panoptic.add_argument("--gt-json-file", required=True)
    panoptic.add_argument("--gt-folder", required=True)
    panoptic.add_argument("--prediction-json-file", required=True)
    panoptic.add_argument("--prediction-folder", required=True)
    panoptic.add_argument("--classes", type=int, choices=[19, 16], default=19,
                          help="16: the Synthia protocol (no terrain, truck, train)")
    panoptic.add_argument("--out", help="JSON file for the results")


def run(args: argparse.Namespace) -> None:
    import json

    from ..atomic import atomic_write_text
    from ..classes import SYNTHIA16_TRAIN_IDS, TRAIN_ID_TO_LABEL_ID
    from ..errors import InputError
    from ..metrics.panoptic_files import evaluate_panoptic_folders, format_table

    subset = [TRAIN_ID_TO_LABEL_ID[t] for t in SYNTHIA16_TRAIN_IDS] if args.classes == 16 else None
    try:
        result = evaluate_panoptic_folders(
            args.gt_json_file, args.gt_folder, args.prediction_json_file, args.prediction_folder, subset
        )
    except ValueError as err:  # the evaluator names the file whose content does not fit
        raise InputError(str(err), fix="give the ground truth and the predictions of the same images, "
                                       "in the Cityscapes panoptic format") from None
    print(format_table(result))
    if args.out:
        atomic_write_text(args.out, json.dumps(result, indent=2) + "\n")
