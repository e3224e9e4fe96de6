"""Objectness of pseudo instances: a small classifier that tells whole objects from fragments.

The thesis proposes an "objectness classifier" for pseudo instances; this is one learned on the
source, where the truth is known. The instance model that makes a round's pseudo instances
clusters the source images inside their labelled thing masks; each cluster that matches a
ground-truth instance (IoU >= 0.5) is an object, every other one a fragment
(:func:`objectness_examples`). A logistic regression on a few shape features
(:func:`mask_features`) learns to tell them apart (:func:`fit_logistic`), and on the target each
pseudo instance gets its probability of being an object (:meth:`Objectness.scores`).

Why shape, and why per class: fragments of an over-split object are small for their class, fill
their box badly and are cut flat or thin; a fixed pixel threshold (``min_size``) cannot know that
a person is far smaller than a bus, and drops every person of a small image.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..classes import NUM_CLASSES
from .grading import match_instances

__all__ = ["FEATURES", "Objectness", "class_log_areas", "fit_logistic", "mask_features", "objectness_examples"]

FEATURES = ("log_area_vs_class", "box_fill", "log_aspect", "height_share")
"""Per mask: log of its area minus its class's mean log area on the source; area / bounding-box
area; log(box height / box width); box height / image height."""


def _boxes(instances: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Areas ``(count,)``, box heights and widths of instances ``1..count`` of ``(H, W)`` ids."""
    rows, cols = np.nonzero(instances)
    ids = instances[rows, cols].astype(np.int64) - 1
    area = np.bincount(ids, minlength=count)
    top = np.full(count, np.iinfo(np.int64).max)
    left = top.copy()
    bottom = np.full(count, -1)
    right = bottom.copy()
    np.minimum.at(top, ids, rows)
    np.minimum.at(left, ids, cols)
    np.maximum.at(bottom, ids, rows)
    np.maximum.at(right, ids, cols)
    present = area > 0
    height = np.where(present, bottom - top + 1, 0)
    width = np.where(present, right - left + 1, 0)
    return area, height, width


def mask_features(instances: np.ndarray, classes: dict[int, int], class_log_area: np.ndarray) -> np.ndarray:
    """The :data:`FEATURES` of every instance of one image: ``(K, 4)`` float64, row k for id k + 1.

    ``instances``: ``(H, W)`` ids numbered ``1..K`` (0 = none); ``classes``: ``{id: trainId}``;
    ``class_log_area``: ``(NUM_CLASSES,)`` mean log pixel area per class (:func:`class_log_areas`).
    An id without pixels gets zeros.
    """
    count = max(classes, default=0)
    area, height, width = _boxes(instances, count)
    present = area > 0
    cls = np.array([classes.get(k, 0) for k in range(1, count + 1)], dtype=np.int64)
    features = np.zeros((count, len(FEATURES)), dtype=np.float64)
    safe_h, safe_w = np.maximum(height, 1), np.maximum(width, 1)
    features[:, 0] = np.log(np.maximum(area, 1)) - class_log_area[cls]
    features[:, 1] = area / (safe_h * safe_w)
    features[:, 2] = np.log(safe_h / safe_w)
    features[:, 3] = height / instances.shape[0]
    features[~present] = 0.0
    return features


def class_log_areas(instance_maps: list[np.ndarray], class_maps: list[dict[int, int]]) -> np.ndarray:
    """Mean log pixel area of each class's instances: ``(NUM_CLASSES,)`` float64.

    ``instance_maps``: ``(H, W)`` id maps; ``class_maps``: their ``{id: trainId}``. A class
    without instances gets the mean over all instances (0 when there are none).
    """
    sums = np.zeros(NUM_CLASSES)
    counts = np.zeros(NUM_CLASSES)
    for instances, classes in zip(instance_maps, class_maps):
        ids = np.array(sorted(classes), dtype=np.int64)
        if len(ids) == 0:
            continue
        area = np.bincount(instances.ravel().astype(np.int64), minlength=int(ids.max()) + 1)[ids]
        cls = np.array([classes[k] for k in ids])
        keep = area > 0
        np.add.at(sums, cls[keep], np.log(area[keep]))
        np.add.at(counts, cls[keep], 1)
    overall = sums.sum() / counts.sum() if counts.sum() else 0.0
    return np.where(counts > 0, sums / np.maximum(counts, 1), overall)


def objectness_examples(
    clusters: list[tuple[np.ndarray, dict[int, int]]], truths: list[tuple[np.ndarray, dict[int, int]]],
    class_log_area: np.ndarray, iou_threshold: float = 0.5,
) -> tuple[np.ndarray, np.ndarray]:
    """Training examples from clustered source images: ``(features (N, 4), is_object (N,) bool)``.

    ``clusters``: per image the clustered masks ``(instances, {id: trainId})``; ``truths``: per
    image its ground-truth instances in the same form. A cluster is an object when a ground-truth
    instance of its class overlaps it with IoU >= ``iou_threshold``, else a fragment.
    """
    features, labels = [], []
    for (pred, pred_classes), (gt, gt_classes) in zip(clusters, truths):
        if not pred_classes:
            continue
        graded = match_instances(pred, pred_classes, gt, gt_classes, iou_threshold)
        rows = mask_features(pred, pred_classes, class_log_area)
        ids = sorted(pred_classes)
        features.append(rows[np.array(ids) - 1])
        labels.append(np.array([hit for _, _, hit in graded], dtype=bool))
    if not features:
        return np.zeros((0, len(FEATURES))), np.zeros(0, dtype=bool)
    return np.concatenate(features), np.concatenate(labels)


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1e-2, iterations: int = 50) -> np.ndarray:
    """L2-regularised logistic regression by Newton's method: weights ``(F + 1,)``, bias last.

    ``x``: ``(N, F)`` features; ``y``: ``(N,)`` 0/1 (bool). Minimises the mean log-loss plus
    ``l2 / 2 * |w|^2`` (the bias included, so one-class data gives a finite bias). Classes are
    weighted to equal total weight, so a rare class (few objects among many fragments) counts.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.ndim != 2 or len(x) != len(y):
        raise ValueError(f"x must be (N, F) and y (N,), got {x.shape} and {y.shape}")
    design = np.hstack([x, np.ones((len(x), 1))])
    positives = y.sum()
    weight = np.where(y > 0, 0.5 / max(positives, 1), 0.5 / max(len(y) - positives, 1))
    w = np.zeros(design.shape[1])
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-design @ w))
        gradient = design.T @ (weight * (p - y)) + l2 * w
        hessian = (design * (weight * p * (1 - p))[:, None]).T @ design + l2 * np.eye(len(w))
        step = np.linalg.solve(hessian, gradient)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w


@dataclass
class Objectness:
    """A fitted objectness classifier: logistic ``weights`` ``(5,)`` over :data:`FEATURES` (bias
    last) and the source's ``class_log_area`` ``(NUM_CLASSES,)``."""

    weights: np.ndarray
    class_log_area: np.ndarray

    def probability(self, features: np.ndarray) -> np.ndarray:
        """Probability of being a whole object for rows of :data:`FEATURES`: ``(N, 4)`` -> ``(N,)``."""
        return 1.0 / (1.0 + np.exp(-(features @ self.weights[:-1] + self.weights[-1])))

    def scores(self, instances: np.ndarray, classes: dict[int, int]) -> np.ndarray:
        """Probability of being a whole object for ids ``1..K`` of one image: ``(K,)`` float64."""
        return self.probability(mask_features(instances, classes, self.class_log_area))

    def describe(self) -> dict:
        """The weights by feature name (for logs and provenance)."""
        return {**dict(zip(FEATURES, map(float, self.weights[:-1]))), "bias": float(self.weights[-1])}
