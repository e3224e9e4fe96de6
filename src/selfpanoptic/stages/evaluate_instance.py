"""``selfpanoptic evaluate-instance``: AP (IoU 0.5:0.95) and AP50 per thing class of an instance prediction."""

from __future__ import annotations

import argparse

from .common import QUIET, add_evaluation_io, progress, settings, settings_parent

HELP = "score instance predictions against a cache's ground truth"
PARENTS = [settings_parent("evaluation"), QUIET]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_evaluation_io(parser, "instance")


def run(args: argparse.Namespace) -> None:
    from tqdm import tqdm

    from ..atomic import atomic_write_text
    from ..classes import CLASS_NAMES, THING_TRAIN_IDS
    from ..intermediates import DatasetCache, InstancePrediction
    from ..metrics.instance import InstanceEvaluator, instances_to_predictions
    from ..metrics.table import metric_frame, percent

    evaluator = InstanceEvaluator(min_region_size=settings(args, "evaluation")["instance_min_region_size"])
    with DatasetCache.open(args.data) as gt, InstancePrediction.open(args.prediction, gt.image_ids, args.data) as pred:
        for i in tqdm(range(len(gt)), desc="evaluate instance", disable=not progress(args)):
            classes, scores = pred.segments(i)
            masks, pred_classes, pred_scores = instances_to_predictions(pred["instances"][i], classes, scores)
            evaluator.add(gt.read("labels", i), gt.read("instances", i), masks, pred_classes, pred_scores)
    scores = evaluator.scores()
    rows = []
    for t in THING_TRAIN_IDS:
        for metric in ("AP", "AP50"):
            rows.append((args.round, "instance", metric, CLASS_NAMES[t], percent(scores["per_class"][CLASS_NAMES[t]][metric])))
    rows.append((args.round, "instance", "AP", "all", percent(scores["AP"])))
    rows.append((args.round, "instance", "AP50", "all", percent(scores["AP50"])))
    table = metric_frame(rows)
    atomic_write_text(args.out, table.to_csv(index=False))
    print(table.to_string(index=False))
