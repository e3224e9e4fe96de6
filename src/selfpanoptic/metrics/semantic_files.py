"""Semantic evaluation of labelIds PNG files, as ``evalPixelLevelSemanticLabeling`` does it.

Ground truth: every ``*_gtFine_labelIds.png`` under a folder; prediction: the one PNG under the
prediction folder whose name starts with the image id (e.g. what ``export-semantic`` writes).
Both hold Cityscapes labelIds; classes with ``ignoreInEval`` are ignored in the ground truth
and, in the prediction, count as misses of the ground-truth class. The counting is
:class:`~selfpanoptic.metrics.semantic.SemanticEvaluator`'s.
"""

from __future__ import annotations

import os

import numpy as np

from .. import pngio
from ..classes import label_ids_to_train_ids
from ._matching import PredictionFinder, ground_truth_files
from .semantic import SemanticEvaluator

__all__ = ["evaluate_semantic_files"]

GT_SUFFIX = "_gtFine_labelIds.png"


def evaluate_semantic_files(gt_folder: str | os.PathLike, prediction_folder: str | os.PathLike) -> dict[str, float]:
    """Scores of labelIds predictions against Cityscapes ground truth, as fractions in [0, 1].

    Returns :func:`~selfpanoptic.metrics.semantic.semantic_scores`' dict (IoU per class name,
    ``mIoU``, ``mIoU16``, ``mIoU13``) plus ``images`` (the number scored). Raises
    ``ValueError`` naming the file when a prediction is missing, ambiguous or of another size.
    """
    find = PredictionFinder(prediction_folder, ".png")
    evaluator = SemanticEvaluator()
    for image_id, gt_path in ground_truth_files(gt_folder, GT_SUFFIX):
        pred_path = find(image_id)
        gt = pngio.read_single_channel(gt_path)
        pred = pngio.read_single_channel(pred_path)
        if pred.shape != gt.shape:
            raise ValueError(f"{pred_path}: prediction is {pred.shape[1]}x{pred.shape[0]}, "
                             f"its ground truth {gt.shape[1]}x{gt.shape[0]}")
        evaluator.add(label_ids_to_train_ids(gt), label_ids_to_train_ids(np.minimum(pred, 255)))
    return {**evaluator.scores(), "images": evaluator.num_images}
