"""``selfpanoptic evaluate TASK``: evaluators of official-format files, like the Cityscapes scripts.

- ``semantic``: labelIds PNGs (``export-semantic``), like ``evalPixelLevelSemanticLabeling``;
- ``instance``: txt + mask PNGs (``export-instance``), like ``evalInstanceLevelSemanticLabeling``;
- ``panoptic``: panoptic PNGs + JSON (``fuse-panoptic``, ``predict-panoptic``), like ``evalPanopticSemanticLabeling``.

The workflow's metrics (``score-semantic``, ``score-instance``, ``score-panoptic``) give
the same numbers from the run's HDF5 predictions; the tests hold all of them to the official
scripts.
"""

from __future__ import annotations

import argparse
import math

HELP = "evaluators of official-format files (semantic, instance, panoptic)"
PARENTS: list = []


def add_arguments(parser: argparse.ArgumentParser) -> None:
    tasks = parser.add_subparsers(dest="evaluator", required=True, metavar="TASK")
    semantic = tasks.add_parser("semantic", help="IoU per class and mIoU, like evalPixelLevelSemanticLabeling")
    semantic.add_argument("--gt-folder", required=True, help="folder searched for *_gtFine_labelIds.png, e.g. gtFine/val")
    semantic.add_argument("--prediction-folder", required=True,
                          help="folder searched for one <image id>*.png labelIds file per ground-truth image")
    instance = tasks.add_parser("instance", help="AP and AP50 per thing class, like evalInstanceLevelSemanticLabeling")
    instance.add_argument("--gt-folder", required=True, help="folder searched for *_gtFine_instanceIds.png")
    instance.add_argument("--prediction-folder", required=True,
                          help="folder searched for one <image id>*.txt per ground-truth image")
    instance.add_argument("--min-region-size", default="scaled",
                          help="ground-truth instances under this many pixels are not evaluated; 'scaled' (default): "
                               "the official 100 at 1024x2048 scaled by image area")
    panoptic = tasks.add_parser("panoptic", help="panoptic quality, like cityscapesscripts' evalPanopticSemanticLabeling")
    panoptic.add_argument("--gt-json-file", required=True)
    panoptic.add_argument("--gt-folder", required=True)
    panoptic.add_argument("--prediction-json-file", required=True)
    panoptic.add_argument("--prediction-folder", required=True)
    panoptic.add_argument("--classes", type=int, choices=[19, 16], default=19,
                          help="16: the Synthia protocol (no terrain, truck, train)")
    for task in (semantic, instance, panoptic):
        task.add_argument("--out", help="JSON file for the results; a score that is undefined (NaN, e.g. the IoU of "
                          "a class in neither ground truth nor prediction, the AP of a class without instances) "
                          "is written as null")


def _min_region_size(value: str, gt_folder: str) -> int:
    """``--min-region-size``: an integer, or ``scaled`` from the size of the first ground-truth file."""
    from .. import pngio
    from ..errors import InputError
    from ..metrics._matching import ground_truth_files
    from ..metrics.instance import min_region_size_for
    from ..metrics.instance_files import GT_SUFFIX

    if value != "scaled":
        if not value.isdigit():
            raise InputError(f"--min-region-size must be a number of pixels or 'scaled', got {value!r}")
        return int(value)
    return min_region_size_for(*pngio.image_size(ground_truth_files(gt_folder, GT_SUFFIX)[0][1]))


def json_safe(value):
    """``value`` with every NaN or infinite float in its nested dicts, lists and tuples made ``None``.

    ``json.dumps`` would write them as ``NaN``/``Infinity``, which are not JSON: strict parsers
    (e.g. JavaScript's ``JSON.parse``) refuse such a file. Tuples become lists.
    """
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):  # np.float64 is a float too
        return None
    return value


def _semantic_table(result: dict) -> str:
    from ..classes import CLASS_NAMES

    lines = [f"{name:14s}| {100 * result[name]:5.1f}" for name in CLASS_NAMES]
    lines.append("-" * 21)
    lines += [f"{name:14s}| {100 * result[name]:5.1f}" for name in ("mIoU", "mIoU16", "mIoU13")]
    return "\n".join(lines)


def _instance_table(result: dict) -> str:
    lines = ["{:14s}| {:>5s}  {:>5s}".format("class", "AP", "AP50")]
    for name, scores in result["per_class"].items():
        lines.append("{:14s}| {:5.1f}  {:5.1f}".format(name, 100 * scores["AP"], 100 * scores["AP50"]))
    lines.append("-" * 28)
    lines.append("{:14s}| {:5.1f}  {:5.1f}".format("average", 100 * result["AP"], 100 * result["AP50"]))
    return "\n".join(lines)


def run(args: argparse.Namespace) -> None:
    import json

    from ..atomic import atomic_write_text
    from ..errors import InputError

    fixes = {
        "semantic": "give the ground-truth folder and a folder with one labelIds PNG per image (export-semantic)",
        "instance": "give the ground-truth folder and a folder with one txt per image (export-instance)",
        "panoptic": "give the ground truth and the predictions of the same images, in the Cityscapes panoptic format",
    }
    try:  # the evaluators raise ValueError naming the file whose content does not fit
        if args.evaluator == "semantic":
            from ..metrics.semantic_files import evaluate_semantic_files

            result = evaluate_semantic_files(args.gt_folder, args.prediction_folder)
            table = _semantic_table(result)
        elif args.evaluator == "instance":
            from ..metrics.instance_files import evaluate_instance_files

            min_region_size = _min_region_size(args.min_region_size, args.gt_folder)
            result = evaluate_instance_files(args.gt_folder, args.prediction_folder, min_region_size)
            table = _instance_table(result) + f"\n(minimum ground-truth instance size: {min_region_size} pixels)"
        else:
            from ..classes import SYNTHIA16_LABEL_IDS
            from ..metrics.panoptic_files import evaluate_panoptic_folders, format_table

            subset = SYNTHIA16_LABEL_IDS if args.classes == 16 else None
            result = evaluate_panoptic_folders(
                args.gt_json_file, args.gt_folder, args.prediction_json_file, args.prediction_folder, subset
            )
            table = format_table(result)
    except ValueError as err:
        raise InputError(str(err), fix=fixes[args.evaluator]) from None
    print(table)
    if args.out:
        # allow_nan=False: a non-finite number json_safe missed (e.g. np.float32) is a bug, not a NaN in the file
        atomic_write_text(args.out, json.dumps(json_safe(result), indent=2, allow_nan=False) + "\n")
