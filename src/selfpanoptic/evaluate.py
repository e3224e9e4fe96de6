"""Scores of predictions against a target cache's ground truth, as rows of the metrics table.

Rows follow the long format of ``results/summary/metrics.csv``:
``round, task, metric, class, value`` with values in percent; ``class`` is a class name or
``all`` (19 classes) / ``all16`` (the 16 classes of the Synthia protocol).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from .classes import CLASS_NAMES, THING_TRAIN_IDS
from .h5io import open_intermediate
from .metrics import InstanceEvaluator, SemanticEvaluator, instances_to_predictions
from .train.data import CachedImages

COLUMNS = ["round", "task", "metric", "class", "value"]


def _check_alignment(pred_ids: list[str], gt_ids: list[str], pred_path, gt_path) -> None:
    if list(pred_ids) != list(gt_ids):
        from .errors import InputError

        raise InputError(f"predictions do not cover the same images as {gt_path}", pred_path,
                         "rerun the prediction stage on this cache")


def _percent(value: float) -> float:
    return float("nan") if math.isnan(value) else round(100.0 * value, 4)


def evaluate_semantic(pred_path: str | Path, gt_cache: str | Path, round_name: str, progress: bool = True) -> pd.DataFrame:
    """Per-class IoU, mIoU (19 classes) and mIoU16 of a semantic prediction file."""
    evaluator = SemanticEvaluator()
    gt = CachedImages(gt_cache)
    with open_intermediate(pred_path) as pred:
        _check_alignment(pred["image_ids"].asstr()[()], gt.image_ids, pred_path, gt_cache)
        for i in tqdm(range(len(gt)), desc="evaluate semantic", disable=not progress):
            evaluator.add(gt.read("labels", i), pred["labels"][i])
    gt.close()
    scores = evaluator.scores()
    rows = [(round_name, "semantic", "IoU", name, _percent(scores[name])) for name in CLASS_NAMES]
    rows.append((round_name, "semantic", "mIoU", "all", _percent(scores["mIoU"])))
    rows.append((round_name, "semantic", "mIoU", "all16", _percent(scores["mIoU16"])))
    return pd.DataFrame(rows, columns=COLUMNS)


def evaluate_instance(
    pred_path: str | Path, gt_cache: str | Path, round_name: str, min_region_size: int, progress: bool = True
) -> pd.DataFrame:
    """AP (IoU 0.5:0.95) and AP50 per thing class and their means, of an instance prediction file."""
    evaluator = InstanceEvaluator(min_region_size=min_region_size)
    gt = CachedImages(gt_cache)
    with open_intermediate(pred_path) as pred:
        _check_alignment(pred["image_ids"].asstr()[()], gt.image_ids, pred_path, gt_cache)
        segments, seg_scores = pred["segments"][()], pred["segment_scores"][()]
        for i in tqdm(range(len(gt)), desc="evaluate instance", disable=not progress):
            mine = segments[:, 0] == i
            classes = {int(s[1]): int(s[2]) for s in segments[mine]}
            scores = {int(s[1]): float(v) for s, v in zip(segments[mine], seg_scores[mine])}
            masks, pred_classes, pred_scores = instances_to_predictions(pred["instances"][i], classes, scores)
            evaluator.add(gt.read("labels", i), gt.read("instances", i), masks, pred_classes, pred_scores)
    gt.close()
    scores = evaluator.scores()
    rows = []
    for t in THING_TRAIN_IDS:
        name = CLASS_NAMES[t]
        for metric in ("AP", "AP50"):
            rows.append((round_name, "instance", metric, name, _percent(scores["per_class"][name][metric])))
    rows.append((round_name, "instance", "AP", "all", _percent(scores["AP"])))
    rows.append((round_name, "instance", "AP50", "all", _percent(scores["AP50"])))
    return pd.DataFrame(rows, columns=COLUMNS)


def evaluate_panoptic(
    prediction_dir: str | Path, gt_json_file: str | Path, gt_folder: str | Path, round_name: str
) -> pd.DataFrame:
    """PQ, SQ, RQ (all / things / stuff and per class) and PQ-dagger of a fused prediction folder,
    over the 19 classes and over the 16 of the Synthia protocol (``all16`` ...)."""
    from .classes import SYNTHIA16_TRAIN_IDS, TRAIN_ID_TO_LABEL_ID
    from .metrics.panoptic import evaluate_panoptic_folders

    prediction_dir = Path(prediction_dir)
    rows = []
    subsets = {"": None, "16": [TRAIN_ID_TO_LABEL_ID[t] for t in SYNTHIA16_TRAIN_IDS]}
    for suffix, subset in subsets.items():
        result = evaluate_panoptic_folders(
            gt_json_file, gt_folder, prediction_dir / "panoptic.json", prediction_dir / "panoptic", subset
        )
        for group in ("All", "Things", "Stuff"):
            for metric in ("pq", "sq", "rq"):
                rows.append((round_name, "panoptic", metric.upper(), f"{group.lower()}{suffix}", _percent(result[group][metric])))
        rows.append((round_name, "panoptic", "PQ_dagger", f"all{suffix}", _percent(result["PQ_dagger"])))
        if not suffix:
            for name, scores in result["per_class"].items():
                for metric in ("pq", "sq", "rq"):
                    rows.append((round_name, "panoptic", metric.upper(), name, _percent(scores[metric])))
    return pd.DataFrame(rows, columns=COLUMNS)


def round_order(name: str) -> tuple[int, int]:
    """Sort key of a round label: 0, 1, 2, ... then ``oracle``."""
    return (1, 0) if name == "oracle" else (0, int(name))


def collect_metrics(paths: list[str | Path]) -> pd.DataFrame:
    """Concatenate per-stage metric tables into the summary table, rounds in order (0, 1, ..., oracle)."""
    frames = [pd.read_csv(p, dtype={"round": str}) for p in paths]
    frame = pd.concat(frames, ignore_index=True)
    frame["_order"] = frame["round"].map(round_order)
    frame = frame.sort_values(["_order", "task"], kind="stable").drop(columns="_order")
    return frame.reset_index(drop=True)


__all__ = ["COLUMNS", "collect_metrics", "evaluate_instance", "evaluate_panoptic", "evaluate_semantic"]
