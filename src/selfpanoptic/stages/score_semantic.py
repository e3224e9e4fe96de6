"""``selfpanoptic score-semantic``: per-class IoU and mIoU over 19, 16 and 13 classes of a semantic prediction.

Scored at the ground truth's resolution against the label files the index lists, as
``cityscapesscripts``' ``evalPixelLevelSemanticLabeling`` scores the labelIds PNGs that
``export-semantic`` writes from the same prediction (the tests hold both to the same numbers).
"""

from __future__ import annotations

import argparse

from .common import QUIET, add_evaluation_io, progress

HELP = "score semantic predictions against the split's ground-truth files"
PARENTS = [QUIET]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_evaluation_io(parser, "semantic")


def run(args: argparse.Namespace) -> None:
    from tqdm import tqdm

    from ..atomic import atomic_write_text
    from ..classes import CLASS_NAMES
    from ..data.ground_truth import GroundTruth
    from ..intermediates import SemanticPrediction
    from ..metrics.semantic import SemanticEvaluator
    from ..metrics.table import metric_frame, percent
    from ._full_resolution import check_prediction_size

    evaluator = SemanticEvaluator()
    gt = GroundTruth(args.ground_truth)
    with SemanticPrediction.open(args.prediction, gt.image_ids, args.ground_truth) as pred:
        check_prediction_size(pred, "labels", gt)
        for i in tqdm(range(len(gt)), desc="evaluate semantic", disable=not progress(args)):
            evaluator.add(gt.read(i)[0], pred["labels"][i])
    scores = evaluator.scores()
    rows = [(args.run, "semantic", "IoU", name, percent(scores[name])) for name in CLASS_NAMES]
    for name, subset in (("all", "mIoU"), ("all16", "mIoU16"), ("all13", "mIoU13")):
        rows.append((args.run, "semantic", "mIoU", name, percent(scores[subset])))
    table = metric_frame(rows)
    atomic_write_text(args.out, table.to_csv(index=False))
    print(table.to_string(index=False))
