"""Cityscapes-style instance segmentation AP, computed as ``cityscapesscripts`` does.

This re-implements the logic of
``cityscapesscripts.evaluation.evalInstanceLevelSemanticLabeling`` (``assignGt2Preds``,
``evaluateMatches``, ``computeAverages``) on in-memory arrays, without its files:

* Classes: the 8 thing classes (trainIds 11..18: person, rider, car, truck, bus, train,
  motorcycle, bicycle). Predictions of other classes are dropped, as are empty masks.
* Ground truth: each non-zero id of ``gt_instances`` on thing pixels is one instance; its class
  is the (most frequent) trainId of its pixels. Thing pixels with instance 0 form the *group*
  region of their class (Cityscapes' ``cargroup`` etc., an instanceId without instance index,
  see :func:`selfpanoptic.formats.cityscapes_ids.decode_instance_ids`). Pixels with trainId
  255 are *void*.
* Only instances with at least ``min_region_size`` pixels are evaluated (official: 100).
* For an overlap threshold ``t`` (0.50, 0.55, ..., 0.95) a prediction matches a ground-truth
  instance of its class when their IoU is ``> t``. A ground-truth instance matched by several
  predictions keeps the highest-scored one as true positive; the others are false positives.
  Unmatched ground truth instances are false negatives.
* A prediction that matches nothing is a false positive unless more than a fraction ``t`` of its
  pixels lies on void, on group regions of its class, or on instances of its class smaller than
  ``min_region_size`` (pixels of a small group count twice, as in the official code). A
  prediction that matches (IoU > ``t``) a group region or a too-small instance is ignored.
* The precision-recall curve is built from the confidence-sorted true/false positives with one
  point per distinct confidence plus an artificial point (recall 0, precision 1) and integrated
  stepwise, exactly as the official code does.
* AP of a class at a threshold is NaN when no image has an evaluated ground-truth instance of the
  class, 0 when there are such instances but no prediction of the class. The AP of a class is
  the mean over thresholds, ``AP50`` its value at threshold 0.5; the overall ``AP`` / ``AP50``
  are NaN-means over classes.

Deliberate differences from the official evaluator are listed in :class:`InstanceEvaluator`.
"""

from __future__ import annotations

import warnings
from typing import NamedTuple, Sequence

import numpy as np

from ..classes import CLASS_NAMES, IGNORE, THING_TRAIN_IDS

__all__ = ["InstanceEvaluator", "instances_to_predictions", "average_precision", "min_region_size_for"]

DEFAULT_OVERLAPS = np.arange(0.5, 1.0, 0.05)
"""The official overlap thresholds 0.50, 0.55, ..., 0.95 (``np.arange(0.5, 1., 0.05)``)."""

OFFICIAL_MIN_REGION_SIZE = 100
"""``minRegionSizes[0]`` of the official evaluator, in pixels of a Cityscapes image."""
OFFICIAL_IMAGE_SIZE = (1024, 2048)
"""``(height, width)`` of the images :data:`OFFICIAL_MIN_REGION_SIZE` is meant for."""


def min_region_size_for(height: int, width: int) -> int:
    """The official minimum instance size scaled to ground truth of ``height x width`` pixels.

    The official 100 pixels hold at 1024 x 2048; on other sizes the same *share of the image*
    is kept: ``round(100 * height * width / (1024 * 2048))`` (half-way values round to even, as
    Python's :func:`round`). 100 at 1024 x 2048, 25 at 512 x 1024, 2 at 128 x 256.
    """
    official_area = OFFICIAL_IMAGE_SIZE[0] * OFFICIAL_IMAGE_SIZE[1]
    return int(round(OFFICIAL_MIN_REGION_SIZE * height * width / official_area))


def average_precision(y_true: np.ndarray, y_score: np.ndarray, hard_false_negatives: int) -> float:
    """Area under the precision-recall curve exactly as ``evaluateMatches`` computes it.

    Parameters
    ----------
    y_true:
        1 for each true positive, 0 for each false positive.
    y_score:
        Confidence of each entry of ``y_true``.
    hard_false_negatives:
        Number of ground-truth instances without a matching prediction.

    For every distinct confidence ``s`` (ascending) the curve has the point
    ``precision = TP(>= s) / N(>= s)``, ``recall = TP(>= s) / (TP_total + hard FN)``; a last
    artificial point has recall 0 and precision 1. The curve is integrated stepwise: each point's
    precision is weighted by half the recall distance between its two neighbours (the first point
    uses itself as left neighbour). Returns 0 when ``y_true`` is empty (the official code fails
    on that case; there is no true positive, so no area).
    """
    y_true = np.asarray(y_true, dtype=np.float64)
    y_score = np.asarray(y_score, dtype=np.float64)
    if y_true.size == 0:
        return 0.0
    order = np.argsort(y_score)
    score_sorted = y_score[order]
    true_cumsum = np.cumsum(y_true[order])
    _, unique_indices = np.unique(score_sorted, return_index=True)
    n_examples = len(score_sorted)
    n_true = true_cumsum[-1]
    true_cumsum = np.append(true_cumsum, 0)  # index -1 (first point) reads 0
    below = true_cumsum[unique_indices - 1]
    tp = n_true - below
    fp = n_examples - unique_indices - tp
    fn = below + hard_false_negatives
    precision = np.append(tp / (tp + fp), 1.0)
    recall = np.append(tp / (tp + fn), 0.0)
    recall_for_conv = np.concatenate(([recall[0]], recall, [0.0]))
    step_widths = np.convolve(recall_for_conv, [-0.5, 0, 0.5], "valid")
    return float(np.dot(precision, step_widths))


def instances_to_predictions(
    instances: np.ndarray,
    classes: dict[int, int],
    scores: dict[int, float] | None = None,
) -> tuple[list[np.ndarray], list[int], list[float]]:
    """Turn an instance map into the ``(masks, classes, scores)`` lists of :meth:`InstanceEvaluator.add`.

    Parameters
    ----------
    instances:
        ``(H, W)`` integer map, 0 = no instance, other values = instance ids.
    classes:
        trainId of each instance id present in the map.
    scores:
        Confidence of each instance id; ``None`` gives every instance confidence 1.0.

    Returns one boolean mask per non-zero id, in ascending id order. Raises ``KeyError`` when an
    id of the map is missing from ``classes`` (or from ``scores`` when given).
    """
    instances = np.asarray(instances)
    ids = [int(i) for i in np.unique(instances) if i != 0]
    missing = [i for i in ids if i not in classes]
    if missing:
        raise KeyError(f"instance id(s) {missing} of the instance map have no class in `classes`")
    if scores is not None:
        missing = [i for i in ids if i not in scores]
        if missing:
            raise KeyError(f"instance id(s) {missing} of the instance map have no score in `scores`")
    masks = [instances == i for i in ids]
    pred_classes = [int(classes[i]) for i in ids]
    pred_scores = [1.0 if scores is None else float(scores[i]) for i in ids]
    return masks, pred_classes, pred_scores


def ground_truth_segments(labels: np.ndarray,
                          inst: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The ground-truth segments of one image: thing instances, then group regions.

    Parameters
    ----------
    labels:
        ``(P,)`` int64 trainIds of the image's pixels (flattened; 255 = void).
    inst:
        ``(P,)`` int64 instance ids (0 = none), unique within the image.

    Returns
    -------
    segment:
        ``(P,)`` int64 segment index of every pixel, -1 for none (stuff, void, and pixels of an
        instance carrying another thing label than its majority).
    seg_class:
        ``(S,)`` int64 trainId of every segment: an instance's is the majority thing trainId of
        its pixels; then one group region per thing class with instance-0 pixels, in trainId order.
    seg_area:
        ``(S,)`` int64 pixels of every segment (an instance counts its majority-class pixels).
    seg_group:
        ``(S,)`` bool, True for group regions.
    """
    num_things = len(THING_TRAIN_IDS)
    first_thing = THING_TRAIN_IDS[0]
    thing_index = np.full(256, -1, dtype=np.int64)
    thing_index[list(THING_TRAIN_IDS)] = np.arange(num_things)
    label_thing = np.where((labels >= 0) & (labels < 256), thing_index[np.clip(labels, 0, 255)], -1)

    segment = np.full(labels.shape, -1, dtype=np.int64)
    seg_class: list[np.ndarray] = []
    seg_area: list[np.ndarray] = []
    seg_group: list[np.ndarray] = []

    has_inst = (inst != 0) & (label_thing >= 0)
    n_inst = 0
    if has_inst.any():
        ids, inverse = np.unique(inst[has_inst], return_inverse=True)
        counts = np.bincount(
            inverse * num_things + label_thing[has_inst], minlength=len(ids) * num_things
        ).reshape(len(ids), num_things)
        inst_class = counts.argmax(axis=1)
        # pixels of an instance carrying another thing label than its majority are left out
        keep = label_thing[has_inst] == inst_class[inverse]
        segment[np.flatnonzero(has_inst)[keep]] = inverse[keep]
        seg_class.append(inst_class + first_thing)
        seg_area.append(counts[np.arange(len(ids)), inst_class])
        seg_group.append(np.zeros(len(ids), dtype=bool))
        n_inst = len(ids)
    is_group = (inst == 0) & (label_thing >= 0)
    if is_group.any():
        group_classes, group_inverse = np.unique(label_thing[is_group], return_inverse=True)
        segment[np.flatnonzero(is_group)] = n_inst + group_inverse
        seg_class.append(group_classes + first_thing)
        seg_area.append(np.bincount(group_inverse, minlength=len(group_classes)))
        seg_group.append(np.ones(len(group_classes), dtype=bool))
    gt_class = np.concatenate(seg_class) if seg_class else np.zeros(0, dtype=np.int64)
    gt_area = np.concatenate(seg_area) if seg_area else np.zeros(0, dtype=np.int64)
    gt_group = np.concatenate(seg_group) if seg_group else np.zeros(0, dtype=bool)
    return segment, gt_class, gt_area, gt_group


class _ImagePredictions(NamedTuple):
    """The kept predictions of one image (thing class, non-empty mask) and their overlaps.

    ``classes``, ``scores``, ``areas`` (pixels), ``void`` (pixels on void ground truth): one entry
    per kept prediction. ``pair_pred``, ``pair_gt``, ``pair_inter``: per prediction, one int64
    array each of (prediction index, segment index, intersection in pixels) over the segments of
    its class that it overlaps.
    """

    classes: list[int]
    scores: list[float]
    areas: list[int]
    void: list[int]
    pair_pred: list[np.ndarray]
    pair_gt: list[np.ndarray]
    pair_inter: list[np.ndarray]


def _predictions(pred_masks, pred_classes, pred_scores, shape: tuple[int, int], segment: np.ndarray,
                 gt_class: np.ndarray, void: np.ndarray) -> _ImagePredictions:
    """Measure the predictions of one image against its segments (:func:`ground_truth_segments`).

    ``shape``: ``(H, W)`` of the ground truth; ``segment``: ``(H*W,)`` int64 segment per pixel;
    ``gt_class``: ``(S,)`` trainId per segment; ``void``: ``(H*W,)`` bool void pixels.
    """
    kept = _ImagePredictions([], [], [], [], [], [], [])
    n_seg = len(gt_class)
    for mask, cls, score in zip(pred_masks, pred_classes, pred_scores):
        cls = int(cls)
        if cls not in THING_TRAIN_IDS:
            continue
        mask = np.asarray(mask)
        if mask.shape != shape:
            raise ValueError(f"prediction mask shape {mask.shape} differs from ground truth {shape}")
        pixels = np.flatnonzero(mask.ravel())
        if pixels.size == 0:
            continue
        k = len(kept.classes)
        kept.classes.append(cls)
        kept.scores.append(float(score))
        kept.areas.append(pixels.size)
        kept.void.append(int(np.count_nonzero(void[pixels])))
        if n_seg:
            seg = segment[pixels]
            inter = np.bincount(seg[seg >= 0], minlength=n_seg)
            hit = np.flatnonzero((inter > 0) & (gt_class == cls))
            kept.pair_pred.append(np.full(len(hit), k, dtype=np.int64))
            kept.pair_gt.append(hit)
            kept.pair_inter.append(inter[hit])
    return kept


class InstanceEvaluator:
    """Accumulates ground truth and predictions over images; :meth:`scores` gives Cityscapes AP.

    Only per-instance statistics are kept (class, area, group flag of each ground-truth segment;
    class, score, area and void overlap of each prediction; the intersections of each
    prediction with the ground-truth segments of its class), never the masks.

    Parameters
    ----------
    min_region_size:
        Ground-truth instances with fewer pixels are not evaluated, and predictions on them are
        not false positives (official ``minRegionSizes[0]`` = 100 for full-size images).
    overlaps:
        IoU thresholds averaged into AP (official: 0.50, 0.55, ..., 0.95).

    Deliberate differences from ``evalInstanceLevelSemanticLabeling``:

    * Void is ``gt_labels == 255``. The official code reads void from the instanceIds image,
      so pixels of caravan/trailer *instances* (ids 29000+k, 30000+k) are not void there but
      are here (this package's readers turn them into trainId 255, instance 0). Caravan/trailer
      *group* pixels and all other ignored classes are void in both.
    * The class of a ground-truth instance is the most frequent trainId of its pixels, not
      the labelId encoded in its instanceId
      (:func:`selfpanoptic.formats.cityscapes_ids.decode_instance_ids`).
    * When a class has ground truth and predictions but every prediction is ignored and no
      ground truth is matched, the official code raises ``IndexError``; here the AP is 0.
    * Distance-based metrics (AP 50m / 100m) are not computed.
    * ``AP50`` is always computed at 0.5, even when 0.5 is not among ``overlaps``.
    """

    def __init__(self, min_region_size: int = 100, overlaps: Sequence[float] | np.ndarray = DEFAULT_OVERLAPS):
        self.min_region_size = int(min_region_size)
        self.overlaps = np.asarray(overlaps, dtype=np.float64).ravel()
        if self.overlaps.size == 0:
            raise ValueError("overlaps must not be empty")
        self.reset()

    def reset(self) -> None:
        self.num_images = 0
        # ground-truth segments (instances and group regions) of thing classes
        self._gt_class: list[np.ndarray] = []
        self._gt_area: list[np.ndarray] = []
        self._gt_group: list[np.ndarray] = []
        # predictions
        self._pred_class: list[np.ndarray] = []
        self._pred_score: list[np.ndarray] = []
        self._pred_area: list[np.ndarray] = []
        self._pred_void: list[np.ndarray] = []
        # (prediction, ground-truth segment, intersection) with the same class, intersection > 0
        self._pair_pred: list[np.ndarray] = []
        self._pair_gt: list[np.ndarray] = []
        self._pair_inter: list[np.ndarray] = []
        self._n_gt = 0
        self._n_pred = 0

    # ------------------------------------------------------------------------------------------
    def add(
        self,
        gt_labels: np.ndarray,
        gt_instances: np.ndarray,
        pred_masks: Sequence[np.ndarray] | np.ndarray,
        pred_classes: Sequence[int],
        pred_scores: Sequence[float],
    ) -> None:
        """Add one image.

        Parameters
        ----------
        gt_labels:
            ``(H, W)`` ground-truth trainIds (255 = void).
        gt_instances:
            ``(H, W)`` integer instance ids, 0 = none; ids are unique within the image.
        pred_masks:
            One ``(H, W)`` boolean mask per predicted instance (or an ``(N, H, W)`` array).
        pred_classes:
            trainId of each predicted instance; non-thing classes are dropped.
        pred_scores:
            Confidence of each predicted instance.
        """
        gt_labels = np.asarray(gt_labels)
        gt_instances = np.asarray(gt_instances)
        if gt_labels.ndim != 2 or gt_labels.shape != gt_instances.shape:
            raise ValueError(
                f"gt_labels {gt_labels.shape} and gt_instances {gt_instances.shape} must be 2-D of the same shape"
            )
        n = len(pred_masks)
        if len(pred_classes) != n or len(pred_scores) != n:
            raise ValueError(
                f"got {n} masks, {len(pred_classes)} classes and {len(pred_scores)} scores; the counts must agree"
            )
        labels = gt_labels.astype(np.int64).ravel()
        segment, gt_class, gt_area, gt_group = ground_truth_segments(labels, gt_instances.astype(np.int64).ravel())
        pred = _predictions(pred_masks, pred_classes, pred_scores, gt_labels.shape, segment, gt_class,
                            void=labels == IGNORE)

        self._gt_class.append(gt_class.astype(np.int64))
        self._gt_area.append(gt_area.astype(np.int64))
        self._gt_group.append(gt_group)
        self._pred_class.append(np.asarray(pred.classes, dtype=np.int64))
        self._pred_score.append(np.asarray(pred.scores, dtype=np.float64))
        self._pred_area.append(np.asarray(pred.areas, dtype=np.int64))
        self._pred_void.append(np.asarray(pred.void, dtype=np.int64))
        if pred.pair_pred:
            self._pair_pred.append(np.concatenate(pred.pair_pred) + self._n_pred)
            self._pair_gt.append(np.concatenate(pred.pair_gt) + self._n_gt)
            self._pair_inter.append(np.concatenate(pred.pair_inter).astype(np.int64))
        self._n_gt += len(gt_class)
        self._n_pred += len(pred.classes)
        self.num_images += 1

    # ------------------------------------------------------------------------------------------
    @staticmethod
    def _cat(parts: list[np.ndarray], dtype) -> np.ndarray:
        return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype=dtype)

    def ap_matrix(self) -> tuple[np.ndarray, np.ndarray]:
        """AP per thing class and threshold.

        Returns ``(thresholds, ap)`` where ``thresholds`` are ``overlaps`` (plus 0.5 appended when
        missing) and ``ap`` has shape ``(8, len(thresholds))``, rows in ``THING_TRAIN_IDS`` order.
        """
        thresholds = self.overlaps
        if not np.any(np.isclose(thresholds, 0.5)):
            thresholds = np.append(thresholds, 0.5)
        gt_class = self._cat(self._gt_class, np.int64)
        gt_area = self._cat(self._gt_area, np.int64)
        gt_group = self._cat(self._gt_group, bool)
        pred_class = self._cat(self._pred_class, np.int64)
        pred_score = self._cat(self._pred_score, np.float64)
        pred_area = self._cat(self._pred_area, np.int64)
        pred_void = self._cat(self._pred_void, np.int64)
        pair_pred = self._cat(self._pair_pred, np.int64)
        pair_gt = self._cat(self._pair_gt, np.int64)
        pair_inter = self._cat(self._pair_inter, np.int64)

        gt_small = gt_area < self.min_region_size
        gt_evaluated = ~gt_group & ~gt_small
        pair_iou = pair_inter / (gt_area[pair_gt] + pred_area[pair_pred] - pair_inter)
        pair_evaluated = gt_evaluated[pair_gt]
        # pixels of a prediction on ignored segments when it matches nothing (a small group counts twice)
        pair_ignored = pair_inter * (gt_group[pair_gt].astype(np.int64) + gt_small[pair_gt].astype(np.int64))
        pred_ignored = pred_void + np.bincount(pair_pred, weights=pair_ignored, minlength=len(pred_class))
        pred_ignore_fraction = pred_ignored / np.maximum(pred_area, 1)

        ap = np.full((len(THING_TRAIN_IDS), len(thresholds)), np.nan)
        for ci, cls in enumerate(THING_TRAIN_IDS):
            n_gt = int(np.count_nonzero(gt_evaluated & (gt_class == cls)))
            is_pred = pred_class == cls
            if n_gt == 0:
                continue  # NaN: no evaluated ground truth (official: haveGt False)
            if not is_pred.any():
                ap[ci, :] = 0.0
                continue
            for ti, threshold in enumerate(thresholds):
                matched = pair_iou > threshold
                # true positives: per matched evaluated gt, its highest-scored prediction; others FP
                sel = np.flatnonzero(matched & pair_evaluated & (gt_class[pair_gt] == cls))
                m_gt = pair_gt[sel]
                m_score = pred_score[pair_pred[sel]]
                order = np.lexsort((-m_score, m_gt))
                m_gt, m_score = m_gt[order], m_score[order]
                first = np.ones(len(m_gt), dtype=bool)
                first[1:] = m_gt[1:] != m_gt[:-1]
                n_matched_gt = int(np.count_nonzero(first))
                # predictions matching no segment of their class are FP unless mostly on ignored pixels
                has_match = np.zeros(len(pred_class), dtype=bool)
                has_match[pair_pred[matched]] = True
                fp_unmatched = is_pred & ~has_match & (pred_ignore_fraction <= threshold)
                y_true = np.concatenate((first.astype(np.float64), np.zeros(int(fp_unmatched.sum()))))
                y_score = np.concatenate((m_score, pred_score[fp_unmatched]))
                ap[ci, ti] = average_precision(y_true, y_score, n_gt - n_matched_gt)
        return thresholds, ap

    def scores(self) -> dict:
        """``{"AP": float, "AP50": float, "per_class": {name: {"AP": float, "AP50": float}}}``.

        Fractions in [0, 1] over the 8 thing classes. A class's ``AP`` is the mean of its AP over
        ``overlaps``; ``AP50`` is its AP at IoU threshold 0.5. NaN for classes without evaluated
        ground truth, which the overall NaN-means leave out (NaN when no class has ground truth).
        """
        thresholds, ap = self.ap_matrix()
        n = len(self.overlaps)
        ap_over = ap[:, :n]
        i50 = int(np.flatnonzero(np.isclose(thresholds, 0.5))[0])
        ap50 = ap[:, i50]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            overall = float(np.nanmean(ap_over)) if not np.all(np.isnan(ap_over)) else float("nan")
            overall50 = float(np.nanmean(ap50)) if not np.all(np.isnan(ap50)) else float("nan")
        per_class = {
            CLASS_NAMES[cls]: {"AP": float(np.mean(ap_over[ci])), "AP50": float(ap50[ci])}
            for ci, cls in enumerate(THING_TRAIN_IDS)
        }
        return {"AP": overall, "AP50": overall50, "per_class": per_class}
