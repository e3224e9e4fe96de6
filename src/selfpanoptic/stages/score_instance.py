"""``selfpanoptic score-instance``: AP (IoU 0.5:0.95) and AP50 per thing class of an instance prediction.

Scored at the ground truth's resolution against the label and instanceIds files the index lists,
as ``cityscapesscripts``' ``evalInstanceLevelSemanticLabeling`` scores the files that
``export-instance`` writes from the same prediction, given the same minimum region size
(``evaluation.instance_min_region_size``; ``scaled``: the official 100 pixels at 1024x2048
scaled by image area).
"""

from __future__ import annotations

import argparse

from .common import QUIET, add_evaluation_io, progress, settings, settings_parent

HELP = "score instance predictions against the split's ground-truth files"
PARENTS = [settings_parent("evaluation"), QUIET]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_evaluation_io(parser, "instance")


def run(args: argparse.Namespace) -> None:
    from tqdm import tqdm

    from ..atomic import atomic_write_text
    from ..classes import CLASS_NAMES, THING_TRAIN_IDS
    from ..data.ground_truth import GroundTruth
    from ..intermediates import InstancePrediction
    from ..metrics.instance import InstanceEvaluator, instances_to_predictions, min_region_size_for
    from ..metrics.table import metric_frame, percent
    from ._full_resolution import check_prediction_size

    gt = GroundTruth(args.ground_truth)
    min_region_size = settings(args, "evaluation")["instance_min_region_size"]
    if min_region_size == "scaled":
        min_region_size = min_region_size_for(*gt.size)
    evaluator = InstanceEvaluator(min_region_size=min_region_size)
    with InstancePrediction.open(args.prediction, gt.image_ids, args.ground_truth) as pred:
        check_prediction_size(pred, "instances", gt)
        for i in tqdm(range(len(gt)), desc="evaluate instance", disable=not progress(args)):
            classes, scores = pred.segments(i)
            masks, pred_classes, pred_scores = instances_to_predictions(pred["instances"][i], classes, scores)
            evaluator.add(*gt.read(i), masks, pred_classes, pred_scores)
    scores = evaluator.scores()
    rows = []
    for t in THING_TRAIN_IDS:
        for metric in ("AP", "AP50"):
            rows.append((args.run, "instance", metric, CLASS_NAMES[t], percent(scores["per_class"][CLASS_NAMES[t]][metric])))
    rows.append((args.run, "instance", "AP", "all", percent(scores["AP"])))
    rows.append((args.run, "instance", "AP50", "all", percent(scores["AP50"])))
    table = metric_frame(rows)
    atomic_write_text(args.out, table.to_csv(index=False))
    print(f"minimum ground-truth instance size: {min_region_size} pixels")
    print(table.to_string(index=False))
