"""Panoptic fusion and instance-mask cleaning; end to end through the official evaluators.

The file formats on their own are tested in ``test_formats.py``.
"""

from __future__ import annotations

import json
import multiprocessing

import numpy as np
import pytest

from selfpanoptic.classes import IGNORE, class_id, label_ids_to_train_ids
from selfpanoptic.formats.instance_files import write_instance_prediction
from selfpanoptic.formats.panoptic_png import panoptic_json, write_panoptic_prediction
from selfpanoptic.fusion import clean_instance_masks, fuse_panoptic
from selfpanoptic.segments import instance_majority_classes

from conftest import save_grey16
from official_eval import instance_level

ROAD, SIDEWALK, SKY = class_id("road"), class_id("sidewalk"), class_id("sky")
PERSON, CAR, TRUCK = class_id("person"), class_id("car"), class_id("truck")
# Cityscapes labelIds
ROAD_ID, SIDEWALK_ID, SKY_ID, PERSON_ID, CAR_ID, TRUCK_ID = 7, 8, 23, 24, 26, 27


# ---------------------------------------------------------------------------------------------
# fuse_panoptic
# ---------------------------------------------------------------------------------------------


def test_majority_class_and_instance_numbering():
    semantic = np.array([
        [CAR, CAR, TRUCK, ROAD, PERSON],
        [CAR, TRUCK, ROAD, ROAD, PERSON],
        [CAR, CAR, ROAD, CAR, CAR],
    ], dtype=np.uint8)
    instances = np.array([
        [5, 5, 5, 0, 2],
        [5, 5, 0, 0, 2],
        [9, 9, 0, 7, 7],
    ], dtype=np.int32)
    panoptic, segments = fuse_panoptic(semantic, instances)
    # instance 5: 3 car + 2 truck pixels -> car; cars numbered in id order 5, 7, 9 -> k 0, 1, 2
    expected = np.array([
        [26000, 26000, 26000, 7, 24000],
        [26000, 26000, 7, 7, 24000],
        [26002, 26002, 7, 26001, 26001],
    ])
    np.testing.assert_array_equal(panoptic, expected)
    assert panoptic.dtype == np.int32
    by_id = {s["id"]: s for s in segments}
    assert [s["id"] for s in segments] == [7, 24000, 26000, 26001, 26002]
    assert by_id[26000]["category_id"] == CAR_ID and by_id[26000]["train_id"] == CAR
    assert by_id[26000]["instance_index"] == 5
    assert by_id[26001]["instance_index"] == 7 and by_id[26002]["instance_index"] == 9
    assert by_id[24000]["category_id"] == PERSON_ID and by_id[24000]["instance_index"] == 2
    assert by_id[7] == {
        "id": 7, "category_id": ROAD_ID, "area": 4, "bbox": [2, 0, 2, 3], "iscrowd": 0,
        "train_id": ROAD, "instance_index": 0,
    }
    assert by_id[26000]["bbox"] == [0, 0, 3, 2] and by_id[26000]["area"] == 5
    assert by_id[24000]["bbox"] == [4, 0, 1, 2]
    assert sum(s["area"] for s in segments) == np.count_nonzero(panoptic)


def test_road_is_7_not_void():
    semantic = np.full((2, 3), ROAD, dtype=np.uint8)
    panoptic, segments = fuse_panoptic(semantic, np.zeros((2, 3), dtype=np.int32))
    assert (panoptic == 7).all()
    assert segments == [{
        "id": 7, "category_id": 7, "area": 6, "bbox": [0, 0, 3, 2], "iscrowd": 0,
        "train_id": ROAD, "instance_index": 0,
    }]


def test_dropped_instance_and_void_rules():
    semantic = np.array([
        [SKY, SKY, SKY, CAR, CAR],
        [ROAD, ROAD, SIDEWALK, CAR, IGNORE],
        [ROAD, ROAD, IGNORE, IGNORE, PERSON],
    ], dtype=np.uint8)
    instances = np.array([
        [0, 3, 3, 0, 0],   # instance 3 lies on sky: dropped, its pixels stay sky
        [4, 4, 0, 0, 0],   # instance 4 lies on road: dropped, stays road
        [0, 0, 6, 6, 0],   # instance 6 covers only ignore pixels: dropped, void
    ], dtype=np.int32)
    panoptic, segments = fuse_panoptic(semantic, instances)
    expected = np.array([
        [23, 23, 23, 0, 0],   # car pixels without an instance are void
        [7, 7, 8, 0, 0],
        [7, 7, 0, 0, 0],      # person without instance: void
    ])
    np.testing.assert_array_equal(panoptic, expected)
    assert [s["id"] for s in segments] == [7, 8, 23]
    assert all(s["instance_index"] == 0 and s["iscrowd"] == 0 for s in segments)
    assert sum(s["area"] for s in segments) == np.count_nonzero(panoptic) == 8


def test_kept_instance_takes_its_stuff_and_ignore_pixels():
    semantic = np.array([[CAR, CAR, ROAD, IGNORE]], dtype=np.uint8)
    instances = np.array([[1, 1, 1, 1]], dtype=np.int32)
    panoptic, segments = fuse_panoptic(semantic, instances)
    np.testing.assert_array_equal(panoptic, [[26000] * 4])
    assert segments[0]["area"] == 4 and segments[0]["bbox"] == [0, 0, 4, 1]


def test_stuff_under_min_area_becomes_void():
    semantic = np.array([
        [ROAD, ROAD, ROAD, SKY],
        [ROAD, ROAD, CAR, CAR],
    ], dtype=np.uint8)
    instances = np.array([[0, 0, 0, 0], [0, 0, 1, 1]], dtype=np.int32)
    panoptic, segments = fuse_panoptic(semantic, instances, stuff_min_area=2)
    np.testing.assert_array_equal(panoptic, [[7, 7, 7, 0], [7, 7, 26000, 26000]])  # sky (1 px) gone
    assert [s["id"] for s in segments] == [7, 26000]  # a 2-pixel car is not affected
    assert [s["area"] for s in segments] == [5, 2]
    # one stuff segment per class, even when the class is split in two regions
    semantic = np.array([[ROAD, SKY, ROAD]], dtype=np.uint8)
    panoptic, segments = fuse_panoptic(semantic, np.zeros((1, 3), dtype=np.int32))
    assert [(s["id"], s["area"], s["bbox"]) for s in segments] == [(7, 2, [0, 0, 3, 1]), (23, 1, [1, 0, 1, 1])]


def test_fuse_rejects_bad_input():
    with pytest.raises(ValueError):
        fuse_panoptic(np.zeros((2, 2), np.uint8), np.zeros((2, 3), np.int32))
    with pytest.raises(ValueError):
        fuse_panoptic(np.full((2, 2), 19, np.uint8), np.zeros((2, 2), np.int32))
    panoptic, segments = fuse_panoptic(np.full((2, 2), IGNORE, np.uint8), np.zeros((2, 2), np.int32))
    assert not panoptic.any() and segments == []


# ---------------------------------------------------------------------------------------------
# clean_instance_masks
# ---------------------------------------------------------------------------------------------


def test_opening_removes_spur_and_min_size_drops_tiny_instance():
    instances = np.zeros((10, 12), dtype=np.int32)
    instances[2:7, 2:7] = 4          # 5x5 block
    instances[4, 7:10] = 4           # a one-pixel-wide spur, 3 pixels long, to the right
    instances[8, 10] = 9             # a 1-pixel instance: removed by the opening
    instances[0, 0:2] = 6            # a 1x2 instance: removed by the opening too
    out = clean_instance_masks(instances, opening_radius=1, closing_radius=1, min_size=4)
    # disk(1) is a 3x3 cross: the opening rounds the block's corners and removes the spur,
    # except its root pixel (4, 7), a bump on the block's edge that the cross still fits over
    expected = np.zeros_like(instances)
    expected[2:7, 2:7] = 4
    expected[4, 7] = 4
    for r, c in [(2, 2), (2, 6), (6, 2), (6, 6)]:
        expected[r, c] = 0
    np.testing.assert_array_equal(out, expected)
    assert out.dtype == np.int32

    # without morphology only min_size acts: the 2-pixel instance stays, the 1-pixel one goes
    out = clean_instance_masks(instances, opening_radius=0, closing_radius=0, min_size=2)
    expected = instances.copy()
    expected[8, 10] = 0
    np.testing.assert_array_equal(out, expected)
    # and min_size counts pixels: a 2-pixel instance goes under min_size=3
    assert 6 not in clean_instance_masks(instances, 0, 0, min_size=3)


def test_closing_fills_hole_and_keeps_instances_disjoint():
    instances = np.zeros((7, 9), dtype=np.int32)
    instances[1:6, 1:4] = 1
    instances[3, 2] = 0              # a hole inside instance 1
    instances[1:6, 4:7] = 2          # instance 2 touches instance 1
    instances[3, 7] = 2
    out = clean_instance_masks(instances, opening_radius=0, closing_radius=1, min_size=0)
    assert out[3, 2] == 1            # hole filled
    # pixels owned before stay with their owner
    np.testing.assert_array_equal(out[instances > 0], instances[instances > 0])
    assert set(np.unique(out)) == {0, 1, 2}
    # ids are kept as given (not relabelled)
    shifted = np.where(instances > 0, instances + 40, 0)
    np.testing.assert_array_equal(clean_instance_masks(shifted, 0, 1, 0), np.where(out > 0, out + 40, 0))


def test_pixel_claimed_by_two_closings_goes_to_the_larger_instance():
    # (2, 2) is an inner corner of both instance 7 (an L) and instance 2: both closings add it
    instances = np.array([
        [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        [0, 2, 7, 7, 0, 0, 0, 0, 0, 0, 0, 0],
        [0, 7, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0],
        [0, 7, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    ], dtype=np.int32)
    out = clean_instance_masks(instances, opening_radius=0, closing_radius=1, min_size=0)
    expected = instances.copy()
    expected[2, 2] = 7  # 7 has 4 pixels, 2 has 3
    np.testing.assert_array_equal(out, expected)
    # make instance 2 the larger one (a 3x3 block of it far away): it gets the pixel
    instances[1:4, 7:10] = 2
    out = clean_instance_masks(instances, opening_radius=0, closing_radius=1, min_size=0)
    expected = instances.copy()
    expected[2, 2] = 2
    np.testing.assert_array_equal(out, expected)


def test_clean_instance_masks_empty_and_border():
    assert not clean_instance_masks(np.zeros((4, 4), dtype=np.int32)).any()
    instances = np.zeros((6, 6), dtype=np.int32)
    instances[:, :3] = 1  # touches three image borders: not eroded there
    np.testing.assert_array_equal(clean_instance_masks(instances, 1, 1, 0), instances)
    instances = np.zeros((6, 6), dtype=np.int32)
    instances[1:4, 2:5] = 1  # one pixel away from the right border: the gap is not filled
    np.testing.assert_array_equal(clean_instance_masks(instances, 1, 1, 0)[:, 5], 0)
    # the per-instance crops give exactly the rules applied on the whole image, at larger radii
    from skimage.morphology import closing, disk, opening
    rng = np.random.default_rng(0)
    instances = np.zeros((40, 40), dtype=np.int32)
    for k in range(1, 7):
        r, c = rng.integers(0, 32, 2)
        instances[r:r + rng.integers(4, 12), c:c + rng.integers(4, 12)] = k
    claims = {}
    for k in np.unique(instances)[1:]:
        mask = opening(instances == k, disk(2), mode="ignore")
        claims[k] = closing(np.pad(mask, 3), disk(3), mode="ignore")[3:-3, 3:-3]
    expected = np.zeros_like(instances)
    for k in sorted(claims, key=lambda k: (-claims[k].sum(), k)):  # larger claimants first
        expected[claims[k] & (expected == 0)] = k
    for k, claim in claims.items():  # then owners keep what they still claim
        expected[claim & (instances == k)] = k
    assert len(claims) >= 4 and (expected != instances).any()
    np.testing.assert_array_equal(clean_instance_masks(instances, 2, 3, 0), expected)


# ---------------------------------------------------------------------------------------------
# End to end with the official evaluators
# ---------------------------------------------------------------------------------------------

IMAGE_IDS = ["testcity_000000_000000", "testcity_000000_000001"]


def gt_instance_ids(n: int) -> np.ndarray:
    """A Cityscapes *_instanceIds.png content (labelIds < 1000, labelId*1000+k for instances)."""
    ids = np.full((40, 60), 7, dtype=np.int32)       # road
    ids[:10] = 23                                     # sky
    ids[10:14, :] = 11                                # building
    ids[14:18, 40:] = 8                               # sidewalk
    ids[18:30, 2:14] = 26000                          # car 0
    ids[20:32, 20 + n:34 + n] = 26001                 # car 1
    ids[22:34, 44:50] = 24000                         # person 0
    ids[30:34, 52:58] = 26                            # a car group (crowd: no instance id)
    ids[34:38, 0:8] = 29000                           # caravan: hasInstances, but ignoreInEval
    ids[38:, :] = 0                                   # unlabeled
    ids[36:38, 20:40] = 4                             # static (void)
    return ids


def perfect_prediction(instance_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The semantic (trainIds) and instance maps a perfect model would predict."""
    label_ids = np.where(instance_ids >= 1000, instance_ids // 1000, instance_ids)
    semantic = label_ids_to_train_ids(label_ids)
    _, instances = np.unique(np.where(instance_ids >= 1000, instance_ids, 0), return_inverse=True)
    return semantic, instances.reshape(instance_ids.shape).astype(np.int32)


def test_perfect_prediction_gives_pq_1_with_official_evaluator(tmp_path, monkeypatch):
    from cityscapesscripts.evaluation import evalPanopticSemanticLabeling as official
    from cityscapesscripts.preparation.createPanopticImgs import convert2panoptic

    for n, image_id in enumerate(IMAGE_IDS):
        save_grey16(tmp_path / "gtFine" / "val" / "testcity" / f"{image_id}_gtFine_instanceIds.png",
                    gt_instance_ids(n))
    (tmp_path / "gt").mkdir()
    convert2panoptic(str(tmp_path / "gtFine"), str(tmp_path / "gt"), setNames=["val"])

    annotations = []
    for n, image_id in enumerate(IMAGE_IDS):
        panoptic, segments = fuse_panoptic(*perfect_prediction(gt_instance_ids(n)))
        annotations.append(write_panoptic_prediction(tmp_path / "pred" / "panoptic", image_id, panoptic, segments))
    (tmp_path / "pred" / "panoptic.json").write_text(json.dumps(panoptic_json(annotations, IMAGE_IDS, 40, 60)))

    # The official code starts one worker process per CPU core; one is enough for two images.
    # (Its numpy use is numpy-2 safe: no np.in1d or removed aliases are needed here.)
    monkeypatch.setattr(multiprocessing, "cpu_count", lambda: 1)
    results = official.evaluatePanoptic(
        str(tmp_path / "gt" / "cityscapes_panoptic_val.json"), str(tmp_path / "gt" / "cityscapes_panoptic_val"),
        str(tmp_path / "pred" / "panoptic.json"), str(tmp_path / "pred" / "panoptic"),
        str(tmp_path / "pq.json"),
    )
    assert results["All"]["pq"] == pytest.approx(1.0)
    assert results["Things"]["pq"] == pytest.approx(1.0) and results["Things"]["n"] == 2  # car, person
    assert results["Stuff"]["pq"] == pytest.approx(1.0) and results["Stuff"]["n"] == 4  # road, sidewalk, building, sky


def test_perfect_instances_give_ap_1_with_official_evaluator(tmp_path):
    for n, image_id in enumerate(IMAGE_IDS):
        gt = tmp_path / "gtFine" / "val" / "testcity" / f"{image_id}_gtFine_instanceIds.png"
        save_grey16(gt, gt_instance_ids(n))
        semantic, instances = perfect_prediction(gt_instance_ids(n))
        ids, majority = instance_majority_classes(semantic, instances)
        classes = dict(zip(ids.tolist(), majority.tolist()))
        scores = {i: 1.0 - 0.01 * i for i in classes}
        write_instance_prediction(tmp_path / "results", image_id, instances, classes, scores)

    averages = instance_level(tmp_path / "gtFine" / "val", tmp_path / "results", 10, tmp_path)
    assert averages["classes"]["car"]["ap"] == pytest.approx(1.0)
    assert averages["classes"]["person"]["ap"] == pytest.approx(1.0)
