"""``selfpanoptic export-instance``: an instance prediction in the official txt + mask PNG format.

``<out>/<image_id>.txt`` lists each image's instances (mask PNG, labelId, score), the masks in
``<out>/masks/``: what ``cityscapesscripts.evaluation.evalInstanceLevelSemanticLabeling`` reads.
These are exactly the instances ``score-instance`` scores (no clean-up: the morphology of
panoptic fusion only shapes the panoptic maps). The folder appears only when complete.
"""

from __future__ import annotations

import argparse

from .common import QUIET, progress

HELP = "write an instance prediction as official txt + mask PNG files"
PARENTS = [QUIET]
FOLDER_OUTPUTS = ("out",)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--prediction", required=True, help="instance prediction HDF5 (predict-instance)")
    parser.add_argument("--out", required=True, help="folder to write")


def run(args: argparse.Namespace) -> None:
    from tqdm import tqdm

    from ..atomic import atomic_output
    from ..formats.instance_files import write_instance_prediction
    from ..intermediates import InstancePrediction

    with InstancePrediction.open(args.prediction) as pred, atomic_output(args.out) as out:
        out.mkdir()
        for i, image_id in enumerate(tqdm(pred.image_ids, desc="export instance", disable=not progress(args))):
            classes, scores = pred.segments(i)
            write_instance_prediction(out, image_id, pred["instances"][i], classes, scores)
    print(f"instance txt + mask PNGs -> {args.out}")
