"""Semantic metrics on tiny label maps whose IoUs are computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from selfpanoptic.classes import CLASS_NAMES, class_id
from selfpanoptic.metrics.semantic import (
    SemanticEvaluator, class_iou, confusion_matrix, mean_iou, semantic_scores,
)

GT = np.array([[0, 0, 1, 1], [2, 2, 255, 0]], dtype=np.uint8)
PRED = np.array([[0, 1, 1, 1], [2, 0, 2, 255]], dtype=np.uint8)


def test_confusion_matrix_counts_rows_gt_cols_pred_and_misses():
    conf = confusion_matrix(GT, PRED, num_classes=3)
    assert conf.dtype == np.int64
    # last column: gt pixels whose prediction is not a valid class (255)
    np.testing.assert_array_equal(conf, [[1, 1, 0, 1], [0, 2, 0, 0], [1, 0, 1, 0]])


def test_class_iou_by_hand():
    iou = class_iou(confusion_matrix(GT, PRED, num_classes=3))
    # class 0: TP 1, FP 1 (gt 2 predicted 0), FN 2 (one predicted 1, one predicted 255)
    # class 1: TP 2, FP 1, FN 0;  class 2: TP 1, FP 0 (the pred-2 pixel on gt 255 is skipped), FN 1
    np.testing.assert_allclose(iou, [1 / 4, 2 / 3, 1 / 2])
    assert mean_iou(iou) == pytest.approx((1 / 4 + 2 / 3 + 1 / 2) / 3)
    assert mean_iou(iou, [1, 2]) == pytest.approx((2 / 3 + 1 / 2) / 2)


def test_ignore_pixels_are_skipped_whatever_the_prediction():
    gt = np.array([[255, 255, 3]], dtype=np.uint8)
    pred = np.array([[0, 255, 3]], dtype=np.uint8)
    conf = confusion_matrix(gt, pred)
    assert conf.sum() == 1 and conf[3, 3] == 1
    iou = class_iou(conf)
    assert iou[3] == 1.0
    assert math.isnan(iou[0])  # the prediction 0 on an ignore pixel is no false positive


def test_gt_values_beyond_num_classes_are_skipped():
    conf = confusion_matrix(np.array([[0, 5]]), np.array([[0, 0]]), num_classes=3)
    np.testing.assert_array_equal(conf, [[1, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]])


def test_no_prediction_lowers_the_iou_of_the_gt_class_only():
    gt = np.zeros((2, 2), dtype=np.uint8)
    pred = np.array([[0, 0], [0, 255]], dtype=np.uint8)
    iou = class_iou(confusion_matrix(gt, pred))
    assert iou[0] == pytest.approx(3 / 4)
    assert np.isnan(iou[1:]).all()  # the missed pixel is no false positive of any class


def test_absent_classes_are_nan_and_left_out_of_the_mean():
    gt = np.array([[0, 1]], dtype=np.uint8)
    pred = np.array([[0, 0]], dtype=np.uint8)
    iou = class_iou(confusion_matrix(gt, pred))
    assert iou[0] == pytest.approx(1 / 2) and iou[1] == 0.0
    assert np.isnan(iou[2:]).all()
    assert mean_iou(iou) == pytest.approx(1 / 4)
    assert math.isnan(mean_iou(iou, [5, 6]))


def test_square_confusion_matrix_is_accepted():
    iou = class_iou(np.array([[2, 1], [0, 3]]))
    np.testing.assert_allclose(iou, [2 / 3, 3 / 4])


def test_semantic_scores_mIoU16_leaves_out_terrain_truck_train():
    terrain, truck, train, road = (class_id(n) for n in ("terrain", "truck", "train", "road"))
    # road perfect (IoU 1), terrain / truck / train all wrong (IoU 0)
    gt = np.array([[road, road, terrain, truck, train]], dtype=np.uint8)
    pred = np.array([[road, road, road, road, road]], dtype=np.uint8)
    # road: TP 2, FP 3 -> 2/5; the three others 0
    scores = semantic_scores(confusion_matrix(gt, pred))
    assert set(scores) == set(CLASS_NAMES) | {"mIoU", "mIoU16", "mIoU13"}
    assert scores["road"] == pytest.approx(2 / 5)
    assert scores["terrain"] == scores["truck"] == scores["train"] == 0.0
    assert math.isnan(scores["sky"])
    assert scores["mIoU"] == pytest.approx((2 / 5) / 4)
    assert scores["mIoU16"] == pytest.approx(2 / 5)  # only road is present among the 16


def test_semantic_scores_mIoU13_also_leaves_out_wall_fence_pole():
    road, wall, fence, pole, sky = (class_id(n) for n in ("road", "wall", "fence", "pole", "sky"))
    # road and sky perfect; wall, fence and pole predicted as road
    gt = np.array([[road, road, sky, wall, fence, pole]], dtype=np.uint8)
    pred = np.array([[road, road, sky, road, road, road]], dtype=np.uint8)
    scores = semantic_scores(confusion_matrix(gt, pred))
    # road: TP 2, FP 3 -> 2/5; sky 1; wall, fence, pole 0
    assert scores["mIoU16"] == pytest.approx((2 / 5 + 1) / 5)
    assert scores["mIoU13"] == pytest.approx((2 / 5 + 1) / 2)
    assert scores["mIoU"] == scores["mIoU16"]  # terrain, truck and train are absent (NaN)


def test_accumulating_two_images_equals_one_concatenated():
    rng = np.random.default_rng(0)
    gts = [rng.integers(0, 20, (6, 7)).astype(np.uint8) for _ in range(2)]
    preds = [rng.integers(0, 20, (6, 7)).astype(np.uint8) for _ in range(2)]
    for g in gts:
        g[g == 19] = 255
    ev = SemanticEvaluator()
    for g, p in zip(gts, preds):
        ev.add(g, p)
    whole = confusion_matrix(np.concatenate(gts, axis=1), np.concatenate(preds, axis=1))
    np.testing.assert_array_equal(ev.confusion, whole)
    assert ev.num_images == 2
    a, b = ev.scores(), semantic_scores(whole)
    assert a.keys() == b.keys()
    for key in a:
        assert a[key] == pytest.approx(b[key], nan_ok=True)
    assert 0.0 <= a["mIoU"] <= 1.0


def test_shape_mismatch_is_rejected():
    with pytest.raises(ValueError):
        confusion_matrix(np.zeros((2, 2)), np.zeros((2, 3)))
    with pytest.raises(ValueError):
        semantic_scores(np.zeros((3, 4), dtype=np.int64))
