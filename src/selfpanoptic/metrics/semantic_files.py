"""Semantic evaluation of labelIds PNG files, as ``evalPixelLevelSemanticLabeling`` does it.

Ground truth: every ``*_gtFine_labelIds.png`` under a folder; prediction: the one PNG under the
prediction folder whose name starts with the image id (e.g. what ``export-semantic`` writes).
Both hold Cityscapes labelIds; classes with ``ignoreInEval`` are ignored in the ground truth
and, in the prediction, count as misses of the ground-truth class. A prediction or ground truth
holding any other id is refused, as the official script refuses it (its confusion matrix has a row and a
column for the labelIds 0..33 only). The counting is
:class:`~selfpanoptic.metrics.semantic.SemanticEvaluator`'s.
"""

from __future__ import annotations

import os

import numpy as np

from .. import pngio
from ..classes import MAX_LABEL_ID, label_ids_to_train_ids
from ..errors import InputError
from ._matching import PredictionFinder, ground_truth_files
from .semantic import SemanticEvaluator

__all__ = ["evaluate_semantic_files", "unknown_label_ids"]

GT_SUFFIX = "_gtFine_labelIds.png"


def unknown_label_ids(label_ids: np.ndarray) -> list[int]:
    """The sorted distinct values of ``label_ids`` ((H, W), any integer dtype) that are not labelIds.

    Valid are 0..:data:`MAX_LABEL_ID`, every labelId of ``cityscapesscripts.helpers.labels`` that a
    PNG can hold (license plate's -1 cannot be stored), exactly those the official evaluator accepts.
    """
    label_ids = np.asarray(label_ids)
    if label_ids.size == 0 or (label_ids.min() >= 0 and label_ids.max() <= MAX_LABEL_ID):
        return []  # the usual case, without np.unique's sort of every pixel
    values = np.unique(label_ids)
    return [int(v) for v in values[(values < 0) | (values > MAX_LABEL_ID)]]


def _check_label_ids(label_ids: np.ndarray, path: os.PathLike, ground_truth: bool = False) -> None:
    """Raise :class:`InputError` naming ``path`` and up to ten ids when ``label_ids`` (a
    prediction, or with ``ground_truth`` a ground-truth file) holds non-labelIds."""
    unknown = unknown_label_ids(label_ids)
    if not unknown:
        return
    shown = ", ".join(map(str, unknown[:10])) + (f" (and {len(unknown) - 10} more)" if len(unknown) > 10 else "")
    if ground_truth:
        raise InputError(
            f"ground truth holds id(s) that are not Cityscapes labelIds: {shown}", path,
            f"--gt-folder must hold Cityscapes *_gtFine_labelIds.png files (labelIds 0-{MAX_LABEL_ID}), "
            "not trainIds, colour or instanceIds files; the official evalPixelLevelSemanticLabeling "
            "stops on other ids too")
    raise InputError(
        f"prediction holds id(s) that are not Cityscapes labelIds: {shown}", path,
        f"predictions must be Cityscapes labelIds 0-{MAX_LABEL_ID} (e.g. 7 road, 26 car), as "
        "`selfpanoptic export-semantic` writes them (not trainIds or colours); the official "
        "evalPixelLevelSemanticLabeling stops on other ids too",
    )


def evaluate_semantic_files(gt_folder: str | os.PathLike, prediction_folder: str | os.PathLike) -> dict[str, float]:
    """Scores of labelIds predictions against Cityscapes ground truth, as fractions in [0, 1].

    Returns :func:`~selfpanoptic.metrics.semantic.semantic_scores`' dict (IoU per class name,
    ``mIoU``, ``mIoU16``, ``mIoU13``) plus ``images`` (the number scored). Raises
    ``ValueError`` naming the file when a prediction is missing, ambiguous or of another size,
    and :class:`InputError` naming it when it (or its ground truth) holds an id that is not a labelId.
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
        _check_label_ids(gt, gt_path, ground_truth=True)
        _check_label_ids(pred, pred_path)
        evaluator.add(label_ids_to_train_ids(gt), label_ids_to_train_ids(pred))
    return {**evaluator.scores(), "images": evaluator.num_images}
