"""``selfpanoptic evaluate-semantic``: per-class IoU, mIoU (19) and mIoU16 of a semantic prediction."""

from __future__ import annotations

import argparse

from .common import QUIET, add_evaluation_io, progress

HELP = "score semantic predictions against a cache's ground truth"
PARENTS = [QUIET]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_evaluation_io(parser, "semantic")


def run(args: argparse.Namespace) -> None:
    from tqdm import tqdm

    from ..atomic import atomic_write_text
    from ..classes import CLASS_NAMES
    from ..intermediates import DatasetCache, SemanticPrediction
    from ..metrics.semantic import SemanticEvaluator
    from ..metrics.table import metric_frame, percent

    evaluator = SemanticEvaluator()
    with DatasetCache.open(args.data) as gt, SemanticPrediction.open(args.prediction, gt.image_ids, args.data) as pred:
        for i in tqdm(range(len(gt)), desc="evaluate semantic", disable=not progress(args)):
            evaluator.add(gt.read("labels", i), pred["labels"][i])
    scores = evaluator.scores()
    rows = [(args.round, "semantic", "IoU", name, percent(scores[name])) for name in CLASS_NAMES]
    rows.append((args.round, "semantic", "mIoU", "all", percent(scores["mIoU"])))
    rows.append((args.round, "semantic", "mIoU", "all16", percent(scores["mIoU16"])))
    table = metric_frame(rows)
    atomic_write_text(args.out, table.to_csv(index=False))
    print(table.to_string(index=False))
