"""Semantic segmentation metrics: confusion matrix, per-class IoU, mIoU over 19, 16 and 13 classes.

All functions work in Cityscapes trainIds (0..18, 255 = ignore) and are pure numpy. Images are
accumulated by summing their confusion matrices, so no label map needs to be kept in memory.

The confusion matrix has one column more than it has rows: column ``C`` (the last) counts
ground-truth pixels whose prediction is not a valid class (``pred >= num_classes``, e.g. 255 =
"no prediction"). Such a pixel is a miss of its ground-truth class (a false negative, lowering
that class's IoU) and a false positive of no class.
"""

from __future__ import annotations

import warnings
from typing import Iterable

import numpy as np

from ..classes import CLASS_NAMES, NUM_CLASSES, SYNTHIA13_TRAIN_IDS, SYNTHIA16_TRAIN_IDS

__all__ = [
    "confusion_matrix",
    "class_iou",
    "mean_iou",
    "semantic_scores",
    "SemanticEvaluator",
]


def confusion_matrix(gt: np.ndarray, pred: np.ndarray, num_classes: int = NUM_CLASSES) -> np.ndarray:
    """Pixel confusion matrix of one image.

    Parameters
    ----------
    gt:
        Ground-truth trainIds, any shape (typically ``(H, W)`` uint8). Pixels equal to 255, or
        otherwise ``>= num_classes``, carry no label and are skipped.
    pred:
        Predicted trainIds, same shape as ``gt``. Values outside ``0 .. num_classes - 1`` (e.g.
        255 = no prediction) count as a miss of the ground-truth class.
    num_classes:
        Number of classes ``C``.

    Returns
    -------
    numpy.ndarray
        int64 array of shape ``(C, C + 1)``. Entry ``[g, p]`` for ``p < C`` is the number of
        pixels with ground truth ``g`` predicted as ``p``; entry ``[g, C]`` is the number of
        pixels with ground truth ``g`` and an invalid prediction. Rows = ground truth,
        columns = prediction. ``matrix[:, :C]`` is the usual square confusion matrix.

    Example
    -------
    >>> confusion_matrix(np.array([[0, 1, 255]]), np.array([[0, 255, 1]]), num_classes=2)
    array([[1, 0, 0],
           [0, 0, 1]])
    """
    gt = np.asarray(gt)
    pred = np.asarray(pred)
    if gt.shape != pred.shape:
        raise ValueError(f"gt shape {gt.shape} differs from pred shape {pred.shape}")
    if num_classes < 1:
        raise ValueError(f"num_classes must be positive, got {num_classes}")
    g = gt.ravel().astype(np.int64)
    p = pred.ravel().astype(np.int64)
    valid = (g >= 0) & (g < num_classes)
    g = g[valid]
    p = p[valid]
    p = np.where((p >= 0) & (p < num_classes), p, num_classes)  # invalid prediction -> miss column
    counts = np.bincount(g * (num_classes + 1) + p, minlength=num_classes * (num_classes + 1))
    return counts.reshape(num_classes, num_classes + 1).astype(np.int64)


def _tp_fp_fn(confusion: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    confusion = np.asarray(confusion, dtype=np.int64)
    if confusion.ndim != 2 or confusion.shape[1] not in (confusion.shape[0], confusion.shape[0] + 1):
        raise ValueError(
            f"confusion matrix must have shape (C, C + 1) or (C, C), got {confusion.shape}"
        )
    num_classes = confusion.shape[0]
    square = confusion[:, :num_classes]
    tp = np.diag(square)
    fp = square.sum(axis=0) - tp
    fn = confusion.sum(axis=1) - tp  # includes the miss column, if present
    return tp, fp, fn


def class_iou(confusion: np.ndarray) -> np.ndarray:
    """Per-class intersection over union ``TP / (TP + FP + FN)``.

    ``confusion`` is a matrix from :func:`confusion_matrix` (shape ``(C, C + 1)``; a square
    ``(C, C)`` matrix without miss column is accepted too). ``TP`` is the diagonal, ``FP`` the
    column sum of the class minus ``TP``, ``FN`` the row sum (miss column included) minus ``TP``.

    Returns a float64 array of shape ``(C,)``; NaN where the class is absent from both ground
    truth and prediction (``TP + FP + FN == 0``).
    """
    tp, fp, fn = _tp_fp_fn(confusion)
    denominator = tp + fp + fn
    iou = np.full(tp.shape, np.nan, dtype=np.float64)
    present = denominator > 0
    iou[present] = tp[present] / denominator[present]
    return iou


def mean_iou(iou: np.ndarray, classes: Iterable[int] | None = None) -> float:
    """Mean of per-class IoUs over a subset of classes, ignoring NaN (absent) classes.

    ``classes`` are the indices (trainIds) to average; default all of them. Returns NaN when all
    selected classes are NaN.
    """
    iou = np.asarray(iou, dtype=np.float64)
    selected = iou if classes is None else iou[np.asarray(list(classes), dtype=np.intp)]
    if selected.size == 0 or np.all(np.isnan(selected)):
        return float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(np.nanmean(selected))


def semantic_scores(confusion: np.ndarray) -> dict[str, float]:
    """Scores of an accumulated 19-class confusion matrix, as fractions in [0, 1].

    Returns a dict with the IoU of each class under its name (``CLASS_NAMES``; NaN if the class
    is absent from ground truth and prediction), ``"mIoU"`` (NaN-mean over the 19 classes) and
    ``"mIoU16"`` (NaN-mean over ``SYNTHIA16_TRAIN_IDS``: terrain, truck and train left out) and
    ``"mIoU13"`` (over ``SYNTHIA13_TRAIN_IDS``: also wall, fence and pole left out).
    """
    iou = class_iou(confusion)
    if iou.shape[0] != NUM_CLASSES:
        raise ValueError(f"semantic_scores expects a {NUM_CLASSES}-class confusion matrix, got {iou.shape[0]}")
    scores: dict[str, float] = {name: float(iou[t]) for t, name in enumerate(CLASS_NAMES)}
    scores["mIoU"] = mean_iou(iou)
    scores["mIoU16"] = mean_iou(iou, SYNTHIA16_TRAIN_IDS)
    scores["mIoU13"] = mean_iou(iou, SYNTHIA13_TRAIN_IDS)
    return scores


class SemanticEvaluator:
    """Accumulates the confusion matrix over images; memory use is one ``(C, C + 1)`` matrix.

    >>> ev = SemanticEvaluator()
    >>> ev.add(gt, pred)          # doctest: +SKIP
    >>> ev.scores()["mIoU"]       # doctest: +SKIP
    """

    def __init__(self, num_classes: int = NUM_CLASSES):
        self.num_classes = num_classes
        self.confusion = np.zeros((num_classes, num_classes + 1), dtype=np.int64)
        self.num_images = 0

    def reset(self) -> None:
        self.confusion[...] = 0
        self.num_images = 0

    def add(self, gt: np.ndarray, pred: np.ndarray) -> None:
        """Add one image (ground-truth and predicted trainIds of the same shape)."""
        self.confusion += confusion_matrix(gt, pred, self.num_classes)
        self.num_images += 1

    def iou(self) -> np.ndarray:
        """Per-class IoU of everything added so far (see :func:`class_iou`)."""
        return class_iou(self.confusion)

    def scores(self) -> dict[str, float]:
        """:func:`semantic_scores` of everything added so far (19 classes only)."""
        return semantic_scores(self.confusion)
