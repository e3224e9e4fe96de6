"""Instance evaluation of txt + mask PNG files, as ``evalInstanceLevelSemanticLabeling`` does it.

Ground truth: every ``*_gtFine_instanceIds.png`` under a folder (``labelId * 1000 + k`` for
instances, the labelId elsewhere, as the official evaluator reads it); prediction: the one txt
under the prediction folder whose name starts with the image id, each line
``<mask PNG relative to the txt> <labelId> <score>`` (what ``export-instance`` writes). The
counting is :class:`~selfpanoptic.metrics.instance.InstanceEvaluator`'s.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from .. import pngio
from ..classes import MAX_LABEL_ID, THING_TRAIN_IDS, label_ids_to_train_ids
from ..formats.cityscapes_ids import decode_instance_ids
from ._matching import PredictionFinder, ground_truth_files
from .instance import InstanceEvaluator

__all__ = ["evaluate_instance_files"]

GT_SUFFIX = "_gtFine_instanceIds.png"


def _ground_truth(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``(trainIds (H, W) uint8, instances (H, W) int32)`` of an instanceIds PNG."""
    raw = pngio.read_single_channel(path)
    label_ids, k = decode_instance_ids(raw)
    labels = label_ids_to_train_ids(label_ids)
    instances = np.where((k >= 0) & np.isin(labels, THING_TRAIN_IDS), raw, 0).astype(np.int32)
    return labels, instances


def _label_and_score(txt: Path, number: int, parts: list[str]) -> tuple[int, float]:
    """The labelId (an integer 0..:data:`MAX_LABEL_ID`) and finite score of a prediction line, else ValueError."""
    where = f"{txt}:{number}"
    try:
        label_id = int(parts[1])
    except ValueError:
        raise ValueError(f"{where}: the labelId {parts[1]!r} is not an integer Cityscapes labelId (0..{MAX_LABEL_ID}, "
                         "e.g. 26 for car)") from None
    if not 0 <= label_id <= MAX_LABEL_ID:
        raise ValueError(f"{where}: the labelId {label_id} is not a Cityscapes labelId (0..{MAX_LABEL_ID}, "
                         "e.g. 26 for car)")
    try:
        score = float(parts[2])
    except ValueError:
        score = float("nan")
    if not math.isfinite(score):
        raise ValueError(f"{where}: the score {parts[2]!r} is not a finite number")
    return label_id, score


def _predictions(txt: Path, shape: tuple[int, int]) -> tuple[list[np.ndarray], list[int], list[float]]:
    """``(masks, trainIds, scores)`` listed by one prediction txt."""
    masks, classes, scores = [], [], []
    for number, line in enumerate(txt.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 3:
            raise ValueError(f"{txt}:{number}: expected '<mask PNG> <labelId> <score>', got {line!r}")
        label_id, score = _label_and_score(txt, number, parts)
        if not (txt.parent / parts[0]).is_file():  # paths in the txt are relative to it (official format)
            raise ValueError(f"{txt}:{number}: the mask file it lists, {txt.parent / parts[0]}, does not exist "
                             "(mask paths are relative to the txt's folder)")
        mask = pngio.read_single_channel(txt.parent / parts[0]) != 0
        if mask.shape != shape:
            raise ValueError(f"{txt.parent / parts[0]}: mask is {mask.shape[1]}x{mask.shape[0]}, "
                             f"its ground truth {shape[1]}x{shape[0]}")
        masks.append(mask)
        classes.append(int(label_ids_to_train_ids(np.array([label_id]))[0]))
        scores.append(score)
    return masks, classes, scores


def evaluate_instance_files(gt_folder: str | os.PathLike, prediction_folder: str | os.PathLike,
                            min_region_size: int) -> dict:
    """Cityscapes AP of txt + mask predictions: :meth:`InstanceEvaluator.scores`' dict plus ``images``.

    ``min_region_size``: ground-truth instances under this many pixels are not evaluated (official:
    100 at 1024x2048; see :func:`~selfpanoptic.metrics.instance.min_region_size_for`). Raises
    ``ValueError`` naming the file when a prediction is missing, ambiguous, malformed or of
    another size.
    """
    find = PredictionFinder(prediction_folder, ".txt")
    evaluator = InstanceEvaluator(min_region_size=min_region_size)
    images = 0
    for image_id, gt_path in ground_truth_files(gt_folder, GT_SUFFIX):
        labels, instances = _ground_truth(gt_path)
        evaluator.add(labels, instances, *_predictions(find(image_id), labels.shape))
        images += 1
    return {**evaluator.scores(), "images": images}
