"""Cityscapes instance AP: hand-computed cases and agreement with cityscapesscripts' evaluator."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from selfpanoptic.classes import (
    CLASS_NAMES, IGNORE, THING_TRAIN_IDS, class_id, label_ids_to_train_ids,
)
from selfpanoptic.metrics.instance import InstanceEvaluator, average_precision, instances_to_predictions

from conftest import save_grey16
from official_eval import instance_level

CAR, PERSON, ROAD = class_id("car"), class_id("person"), class_id("road")
THING_NAMES = [CLASS_NAMES[t] for t in THING_TRAIN_IDS]


def scene(height=20, width=20):
    """Road everywhere; returns (labels, instances)."""
    return np.full((height, width), ROAD, dtype=np.uint8), np.zeros((height, width), dtype=np.int32)


def put(labels, instances, cls, inst_id, rows, cols):
    labels[rows, cols] = cls
    instances[rows, cols] = inst_id
    mask = np.zeros(labels.shape, dtype=bool)
    mask[rows, cols] = True
    return mask


def box(shape, rows, cols):
    mask = np.zeros(shape, dtype=bool)
    mask[rows, cols] = True
    return mask


def only_class_scores(scores, name):
    others = [n for n in THING_NAMES if n != name]
    assert all(math.isnan(scores["per_class"][n]["AP"]) for n in others)
    return scores["per_class"][name]


def test_perfect_prediction_scores_one():
    labels, inst = scene()
    car = put(labels, inst, CAR, 26001, slice(2, 7), slice(2, 7))
    person = put(labels, inst, PERSON, 24001, slice(10, 18), slice(10, 14))
    ev = InstanceEvaluator(min_region_size=10)
    ev.add(labels, inst, [car, person], [CAR, PERSON], [0.9, 0.8])
    s = ev.scores()
    assert s["AP"] == 1.0 and s["AP50"] == 1.0
    assert s["per_class"]["car"] == {"AP": 1.0, "AP50": 1.0}
    assert s["per_class"]["person"] == {"AP": 1.0, "AP50": 1.0}
    assert math.isnan(s["per_class"]["bus"]["AP"])


def test_no_prediction_scores_zero():
    labels, inst = scene()
    put(labels, inst, CAR, 26001, slice(2, 7), slice(2, 7))
    ev = InstanceEvaluator(min_region_size=10)
    ev.add(labels, inst, [], [], [])
    s = ev.scores()
    assert s["AP"] == 0.0 and s["AP50"] == 0.0
    assert only_class_scores(s, "car") == {"AP": 0.0, "AP50": 0.0}


@pytest.mark.parametrize("pred_rows, pred_cols, expected_ap", [
    # 8x8 inside a 10x10 car: IoU 0.64 > 0.50, 0.55, 0.60 only -> AP = 3/10
    (slice(1, 9), slice(1, 9), 0.3),
    # 6x10 inside: IoU 0.60 is not > 0.6 (strict comparison, as the official code) -> 2/10
    (slice(1, 7), slice(0, 10), 0.2),
])
def test_partial_overlap_passes_only_the_lower_thresholds(pred_rows, pred_cols, expected_ap):
    labels, inst = scene()
    put(labels, inst, CAR, 26001, slice(0, 10), slice(0, 10))
    pred = box(labels.shape, pred_rows, pred_cols)
    ev = InstanceEvaluator(min_region_size=10)
    ev.add(labels, inst, [pred], [CAR], [0.7])
    # passed thresholds: one TP, AP 1; failed: one FP and one missed GT, AP 0
    s = ev.scores()
    assert s["AP50"] == 1.0
    assert s["AP"] == pytest.approx(expected_ap)


def test_false_positive_ranked_above_true_positive():
    labels, inst = scene()
    car = put(labels, inst, CAR, 26001, slice(2, 7), slice(2, 7))
    fp = box(labels.shape, slice(12, 16), slice(12, 16))
    ev = InstanceEvaluator(min_region_size=10)
    ev.add(labels, inst, [fp, car], [CAR, CAR], [0.9, 0.3])
    # ascending scores: TP 0.3 -> (P 1/2, R 1); FP 0.9 -> (P 0, R 0); artificial (P 1, R 0).
    # Official step integration: widths (R0 - R1)/2 = 1/2, (R0 - R2)/2 = 1/2, (R1 - 0)/2 = 0
    # -> AP = 1/2 * 1/2 + 0 * 1/2 + 1 * 0 = 1/4 at every threshold.
    s = ev.scores()
    assert s["AP"] == pytest.approx(0.25) and s["AP50"] == pytest.approx(0.25)
    # ranked below the TP the FP costs nothing: (P 1/2, R 1), (P 1, R 1), (P 1, R 0) -> AP 1
    ev = InstanceEvaluator(min_region_size=10)
    ev.add(labels, inst, [fp, car], [CAR, CAR], [0.1, 0.3])
    assert ev.scores()["AP"] == pytest.approx(1.0)


def test_duplicate_match_keeps_the_higher_score_and_counts_the_other_false_positive():
    labels, inst = scene()
    car = put(labels, inst, CAR, 26001, slice(2, 7), slice(2, 7))
    ev = InstanceEvaluator(min_region_size=10)
    ev.add(labels, inst, [car, car], [CAR, CAR], [0.4, 0.8])
    # TP at 0.8, FP at 0.4 below it: AP 1 (see the test above)
    assert ev.scores()["AP"] == pytest.approx(1.0)
    assert average_precision(np.array([0.0, 1.0]), np.array([0.4, 0.8]), 0) == pytest.approx(1.0)


def test_prediction_on_gt_smaller_than_min_region_size_is_ignored():
    labels, inst = scene()
    big = put(labels, inst, CAR, 26001, slice(2, 7), slice(2, 7))  # 25 px
    small = put(labels, inst, CAR, 26002, slice(12, 15), slice(12, 15))  # 9 px < 10
    # the prediction on the small car is ranked first; were it a FP, AP would be 1/4
    ev = InstanceEvaluator(min_region_size=10)
    ev.add(labels, inst, [small, big], [CAR, CAR], [0.9, 0.3])
    assert ev.scores()["AP"] == pytest.approx(1.0)
    # the small car alone is no ground truth: the class is NaN
    labels2 = labels.copy()
    labels2[big] = ROAD
    ev = InstanceEvaluator(min_region_size=10)
    ev.add(labels2, np.where(big, 0, inst), [small], [CAR], [0.9])
    assert math.isnan(ev.scores()["per_class"]["car"]["AP"])
    # with min_region_size 9 it counts: FP above TP again
    ev = InstanceEvaluator(min_region_size=9)
    ev.add(labels, inst, [small, big], [CAR, CAR], [0.9, 0.3])
    assert ev.scores()["AP"] == pytest.approx(1.0)  # both now TPs


def test_predictions_mostly_on_void_or_group_regions_are_ignored():
    labels, inst = scene()
    car = put(labels, inst, CAR, 26001, slice(2, 7), slice(2, 7))
    labels[10:14, 10:20] = IGNORE  # void
    labels[15:20, 0:8] = CAR  # car group: car pixels without instance
    on_void = box(labels.shape, slice(10, 14), slice(10, 20))  # all on void: 1.0 > every threshold
    mostly_void = box(labels.shape, slice(10, 14), slice(9, 19))  # 36 of 40 px on void: 0.9
    on_group = box(labels.shape, slice(16, 20), slice(1, 7))  # inside the group, IoU 24/40 = 0.6
    half_void = box(labels.shape, slice(10, 14), slice(5, 15))  # 20 of 40 px on void: 0.5 ignored at no threshold
    ev = InstanceEvaluator(min_region_size=10)
    ev.add(labels, inst, [on_void, on_group, car], [CAR, CAR, CAR], [0.9, 0.8, 0.3])
    assert ev.scores()["AP"] == pytest.approx(1.0)
    ev = InstanceEvaluator(min_region_size=10)
    ev.add(labels, inst, [half_void, car], [CAR, CAR], [0.9, 0.3])
    assert ev.scores()["AP"] == pytest.approx(0.25)
    # 0.9 on void exceeds the thresholds 0.50 .. 0.85 (ignored, AP 1) but not 0.90 (~0.9000000000000001)
    # and 0.95 (false positive above the TP, AP 1/4): (8 * 1 + 2 * 1/4) / 10
    ev = InstanceEvaluator(min_region_size=10)
    ev.add(labels, inst, [mostly_void, car], [CAR, CAR], [0.9, 0.3])
    assert ev.scores()["AP"] == pytest.approx(0.85)
    assert ev.scores()["AP50"] == pytest.approx(1.0)


def test_classes_without_gt_are_nan_and_left_out_of_the_mean():
    labels, inst = scene()
    car = put(labels, inst, CAR, 26001, slice(2, 7), slice(2, 7))
    person_pred = box(labels.shape, slice(10, 15), slice(10, 15))
    ev = InstanceEvaluator(min_region_size=10)
    ev.add(labels, inst, [car, person_pred], [CAR, PERSON], [0.9, 0.9])
    s = ev.scores()
    assert math.isnan(s["per_class"]["person"]["AP"]) and math.isnan(s["per_class"]["person"]["AP50"])
    assert s["AP"] == 1.0 and s["AP50"] == 1.0
    # a class with ground truth but no prediction is 0 and does count
    put(labels, inst, PERSON, 24001, slice(10, 15), slice(10, 15))
    ev = InstanceEvaluator(min_region_size=10)
    ev.add(labels, inst, [car], [CAR], [0.9])
    s = ev.scores()
    assert s["per_class"]["person"]["AP"] == 0.0
    assert s["AP"] == pytest.approx(0.5)


def test_empty_evaluator_is_nan():
    s = InstanceEvaluator().scores()
    assert math.isnan(s["AP"]) and math.isnan(s["AP50"])


def test_accumulation_over_images_and_class_mismatch():
    labels, inst = scene()
    car = put(labels, inst, CAR, 26001, slice(2, 7), slice(2, 7))
    ev = InstanceEvaluator(min_region_size=10)
    ev.add(labels, inst, [car], [PERSON], [0.9])  # wrong class: a miss for car, person has no GT
    ev.add(labels, inst, [car], [CAR], [0.5])
    s = ev.scores()
    # car: one TP (0.5) and one hard FN -> (P 1, R 1/2), artificial (1, 0): AP = 1 * 1/4 + 1 * 1/4
    assert s["per_class"]["car"]["AP"] == pytest.approx(0.5)
    assert math.isnan(s["per_class"]["person"]["AP"])


def test_instances_to_predictions():
    instances = np.array([[0, 3, 3], [7, 7, 0]], dtype=np.int32)
    masks, classes, scores = instances_to_predictions(instances, {3: CAR, 7: PERSON, 9: CAR}, {3: 0.5, 7: 0.25})
    assert classes == [CAR, PERSON] and scores == [0.5, 0.25]
    np.testing.assert_array_equal(masks[0], instances == 3)
    np.testing.assert_array_equal(masks[1], instances == 7)
    assert instances_to_predictions(instances, {3: CAR, 7: PERSON}, None)[2] == [1.0, 1.0]
    with pytest.raises(KeyError):
        instances_to_predictions(instances, {3: CAR}, None)


def test_bad_input_is_rejected():
    labels, inst = scene()
    ev = InstanceEvaluator()
    with pytest.raises(ValueError):
        ev.add(labels, inst[:, :5], [], [], [])
    with pytest.raises(ValueError):
        ev.add(labels, inst, [np.ones((3, 3), bool)], [CAR], [1.0])
    with pytest.raises(ValueError):
        ev.add(labels, inst, [np.ones(labels.shape, bool)], [CAR], [])


# ---------------------------------------------------------------------------------------------
# Agreement with cityscapesscripts.evaluation.evalInstanceLevelSemanticLabeling
# ---------------------------------------------------------------------------------------------

HEIGHT, WIDTH, MIN_REGION = 64, 128, 20
THING_LABEL_IDS = [24, 25, 26, 33, 32, 28]  # person, rider, car, bicycle, motorcycle, bus
STUFF_LABEL_IDS = [7, 8, 11, 21, 23, 0, 4, 9]  # includes the void ids 0 (unlabeled), 4 (static), 9 (parking)


def random_image(rng):
    """labelIds and Cityscapes instanceIds of one random scene, plus a list of predictions."""
    label_ids = np.zeros((HEIGHT, WIDTH), dtype=np.int32)
    for _ in range(12):  # stuff rectangles
        r, c = rng.integers(0, HEIGHT), rng.integers(0, WIDTH)
        label_ids[r:r + rng.integers(5, 40), c:c + rng.integers(5, 60)] = rng.choice(STUFF_LABEL_IDS)
    instance_ids = label_ids.copy()
    counters: dict[int, int] = {}
    gt_masks = []
    for _ in range(rng.integers(6, 11)):
        lid = int(rng.choice(THING_LABEL_IDS[:4]))
        r, c = rng.integers(0, HEIGHT - 3), rng.integers(0, WIDTH - 3)
        h, w = rng.integers(2, 18), rng.integers(2, 24)
        mask = np.zeros((HEIGHT, WIDTH), dtype=bool)
        mask[r:r + h, c:c + w] = True
        group = rng.random() < 0.15
        label_ids[mask] = lid
        if group:
            instance_ids[mask] = lid  # e.g. cargroup: instanceId = labelId < 1000
        else:
            k = counters.get(lid, 0)
            counters[lid] = k + 1
            instance_ids[mask] = lid * 1000 + k
        gt_masks.append((lid, mask))
    # caravan group pixels (29, void in both evaluators)
    label_ids[0:4, 0:10] = 29
    instance_ids[0:4, 0:10] = 29

    predictions = []  # (mask, labelId, score)
    for lid, mask in gt_masks:
        mask = mask & (label_ids == lid)  # visible part
        if not mask.any() or rng.random() < 0.15:
            continue
        shift = (0, 0) if rng.random() < 0.4 else (int(rng.integers(-2, 3)), int(rng.integers(-3, 4)))
        pred = np.roll(mask, shift, axis=(0, 1))
        if rng.random() < 0.3:  # grow
            pred = pred | np.roll(pred, int(rng.integers(1, 4)), axis=1)
        if rng.random() < 0.2:  # wrong class
            lid = int(rng.choice(THING_LABEL_IDS))
        predictions.append((pred, lid, rng.random()))
        if rng.random() < 0.25:  # duplicate
            predictions.append((np.roll(pred, 1, axis=0), lid, rng.random()))
    for _ in range(rng.integers(2, 6)):  # free false positives, some on void
        mask = np.zeros((HEIGHT, WIDTH), dtype=bool)
        r, c = rng.integers(0, HEIGHT), rng.integers(0, WIDTH)
        mask[r:r + rng.integers(2, 12), c:c + rng.integers(2, 16)] = True
        predictions.append((mask, int(rng.choice(THING_LABEL_IDS + [7, 29])), rng.random()))
    predictions.append((np.zeros((HEIGHT, WIDTH), dtype=bool), 26, 0.5))  # empty mask: skipped by both
    predictions = [(m, l, round(float(s), 4)) for m, l, s in predictions]
    if rng.random() < 0.5 and predictions:  # a tie in confidence
        m, l, _ = predictions[0]
        predictions[0] = (m, l, predictions[-1][2])
    return label_ids, instance_ids, predictions


def official_scores(tmp_path: Path, images):
    pred_root = tmp_path / "results"
    for n, (label_ids, instance_ids, predictions) in enumerate(images):
        stem = f"testcity_000000_{n:06d}"
        save_grey16(tmp_path / "gtFine" / "val" / "testcity" / f"{stem}_gtFine_instanceIds.png", instance_ids)
        lines = []
        for k, (mask, lid, score) in enumerate(predictions):
            name = f"{stem}_{k:03d}.png"
            (pred_root / "masks").mkdir(parents=True, exist_ok=True)
            Image.fromarray(mask.astype(np.uint8) * 255, "L").save(pred_root / "masks" / name)
            lines.append(f"masks/{name} {lid} {score}\n")
        (pred_root / f"{stem}_pred.txt").write_text("".join(lines))
    return instance_level(tmp_path / "gtFine" / "val", pred_root, MIN_REGION, tmp_path)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_agrees_with_cityscapesscripts(tmp_path, seed):
    rng = np.random.default_rng(seed)
    images = [random_image(rng) for _ in range(4)]

    label_to_train = np.asarray(label_ids_to_train_ids(np.arange(256)))
    ev = InstanceEvaluator(min_region_size=MIN_REGION)
    for label_ids, instance_ids, predictions in images:
        labels = label_ids_to_train_ids(label_ids)
        # as the Cityscapes reader: instance ids >= 1000 on thing pixels, else 0
        instances = np.where((instance_ids >= 1000) & np.isin(labels, THING_TRAIN_IDS), instance_ids, 0)
        ev.add(
            labels, instances,
            [m for m, _, _ in predictions],
            [int(label_to_train[lid]) for _, lid, _ in predictions],
            [s for _, _, s in predictions],
        )
    ours = ev.scores()
    theirs = official_scores(tmp_path, images)

    assert ours["AP"] == pytest.approx(theirs["allAp"], abs=1e-6)
    assert ours["AP50"] == pytest.approx(theirs["allAp50%"], abs=1e-6)
    for train_id in THING_TRAIN_IDS:
        name = CLASS_NAMES[train_id]
        official_class = theirs["classes"][name]
        assert ours["per_class"][name]["AP"] == pytest.approx(official_class["ap"], abs=1e-6, nan_ok=True), name
        assert ours["per_class"][name]["AP50"] == pytest.approx(
            float(np.squeeze(official_class["ap50%"])), abs=1e-6, nan_ok=True
        ), name
    # the random scenes exercise matches, misses and several classes
    assert 0.0 < ours["AP"] < 1.0
    assert sum(not math.isnan(v["AP"]) for v in ours["per_class"].values()) >= 3
