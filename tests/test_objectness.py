"""The objectness classifier of pseudo instances (:mod:`selfpanoptic.pseudo.objectness`) and its filter."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from selfpanoptic.classes import NUM_CLASSES, class_id
from selfpanoptic.pseudo.masks import pseudo_instances_batch
from selfpanoptic.pseudo.objectness import (
    FEATURES,
    Objectness,
    class_log_areas,
    fit_logistic,
    mask_features,
    objectness_examples,
)

CAR, PERSON = class_id("car"), class_id("person")


def test_mask_features_by_hand():
    instances = np.zeros((4, 6), dtype=np.int32)
    instances[0:2, 0:4] = 1  # 8 px, box 2 x 4, full
    instances[1:4, 5] = 2  # 3 px, box 3 x 1
    instances[3, 0] = 2  # same id far away: box rows 1..3, cols 0..5 -> 3 x 6, 4 px
    log_area = np.zeros(NUM_CLASSES)
    log_area[CAR] = np.log(4.0)
    features = mask_features(instances, {1: CAR, 2: PERSON}, log_area)
    assert features.shape == (2, len(FEATURES))
    np.testing.assert_allclose(features[0], [np.log(8) - np.log(4), 1.0, np.log(2 / 4), 2 / 4])
    np.testing.assert_allclose(features[1], [np.log(4), 4 / 18, np.log(3 / 6), 3 / 4])


def test_class_log_areas_average_per_class_and_fill_absent_classes():
    a = np.array([[1, 1, 0, 7]])  # car of 2 px, person of 1 px (id 7)
    b = np.array([[3, 3, 3, 3]])  # car of 4 px
    areas = class_log_areas([a, b], [{1: CAR, 7: PERSON}, {3: CAR}])
    assert areas[CAR] == pytest.approx((np.log(2) + np.log(4)) / 2)
    assert areas[PERSON] == pytest.approx(0.0)
    overall = (np.log(2) + np.log(4) + 0.0) / 3
    assert areas[class_id("bus")] == pytest.approx(overall)


def test_examples_label_matched_clusters_as_objects_and_the_rest_as_fragments():
    gt = np.array([[5, 5, 5, 5, 0, 0]])
    pred = np.array([[1, 1, 1, 0, 2, 0]])  # 1: IoU 3/4 with the car; 2: off the car
    x, y = objectness_examples([(pred, {1: CAR, 2: CAR})], [(gt, {5: CAR})], np.zeros(NUM_CLASSES))
    assert x.shape == (2, len(FEATURES))
    assert y.tolist() == [True, False]
    empty_x, empty_y = objectness_examples([(np.zeros((1, 3), int), {})], [(gt[:, :3], {5: CAR})], np.zeros(NUM_CLASSES))
    assert empty_x.shape == (0, len(FEATURES)) and empty_y.shape == (0,)


def test_fit_logistic_separates_a_separable_feature_and_balances_classes():
    x = np.array([[-2.0], [-1.5], [-1.0], [1.0], [1.2], [1.4], [1.6], [1.8], [2.0], [2.2]])
    y = x[:, 0] > 0
    w = fit_logistic(x, y, l2=1e-3)
    p = 1 / (1 + np.exp(-(x[:, 0] * w[0] + w[1])))
    assert ((p >= 0.5) == y).all()
    assert w[0] > 0
    # one class only: a finite bias towards it
    w_one = fit_logistic(x, np.ones(len(x), bool))
    assert np.isfinite(w_one).all() and w_one[-1] > 0
    with pytest.raises(ValueError):
        fit_logistic(x, y[:3])


def test_objectness_filter_drops_low_scoring_masks_in_pseudo_instances():
    # two well-separated embedding blobs inside one car mask: a big one and a 4-pixel one
    embeddings = torch.zeros(1, 2, 4, 8)
    embeddings[0, 0, :, 6:] = 5.0
    embeddings[0, 0, 0:2, 6:] = 5.0
    semantic = np.full((1, 4, 8), CAR, dtype=np.uint8)
    semantic[0, 2:, 6:] = 0  # road: the small blob keeps 4 pixels
    confidence = np.ones((1, 4, 8), dtype=np.float32)
    kept_all = pseudo_instances_batch(embeddings, semantic, confidence, [CAR], 0.5, 2.0, 1, 0.0)[0]
    assert kept_all[0].max() == 2
    # a classifier that likes large masks for their class (weight on log area vs class)
    area = np.zeros(NUM_CLASSES)
    area[CAR] = np.log(10.0)
    large = Objectness(np.array([10.0, 0.0, 0.0, 0.0, 0.0]), area)
    instances, classes = pseudo_instances_batch(embeddings, semantic, confidence, [CAR], 0.5, 2.0, 1, 0.0,
                                                objectness=large, min_objectness=0.5)[0]
    assert classes == {1: CAR}
    assert (instances == 1).sum() == 24 and (instances[:, 6:] == 0).all()
    assert set(large.describe()) == {*FEATURES, "bias"}
