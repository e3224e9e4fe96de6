"""What the toy writers put on disk is what the readers of the real formats decode."""

from __future__ import annotations

import numpy as np

from selfpanoptic.classes import class_id
from selfpanoptic.data import open_dataset
from selfpanoptic.pngio import read_png16_channels, read_single_channel
from selfpanoptic.toy.formats import (
    cityscapes_instance_ids, write_cityscapes_sample, write_gta5_sample, write_synthia_sample,
)
from selfpanoptic.toy.domains import gta_truck_train_plan

ROAD, CAR, TRUCK, PERSON = (class_id(n) for n in ("road", "car", "truck", "person"))
SEMANTIC = np.array([[ROAD, CAR, CAR, TRUCK], [ROAD, PERSON, CAR, TRUCK]], dtype=np.uint8)
INSTANCES = np.array([[0, 1, 1, 3], [0, 2, 4, 3]], dtype=np.int32)
CLASSES = {1: CAR, 2: PERSON, 3: TRUCK, 4: CAR}
IMAGE = np.arange(24, dtype=np.uint8).reshape(2, 4, 3)


def test_synthia_writer_hides_truck_class_but_keeps_its_instance(tmp_path):
    write_synthia_sample(tmp_path, "0000000", IMAGE, SEMANTIC, INSTANCES)
    raw = read_png16_channels(tmp_path / "GT" / "LABELS" / "0000000.png")
    np.testing.assert_array_equal(raw[..., 0], [[3, 8, 8, 0], [3, 10, 8, 0]])  # Synthia ids, truck -> 0
    sample = open_dataset("synthia", tmp_path)[0]
    expected = SEMANTIC.copy()
    expected[SEMANTIC == TRUCK] = 255
    np.testing.assert_array_equal(sample.labels, expected)
    np.testing.assert_array_equal(sample.instances, INSTANCES)
    np.testing.assert_array_equal(sample.image, IMAGE)


def test_gta_writer_round_trip(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    write_gta5_sample(tmp_path, "00001", IMAGE, SEMANTIC)
    np.testing.assert_array_equal(read_single_channel(tmp_path / "labels" / "00001.png"), [[7, 26, 26, 27], [7, 24, 26, 27]])
    sample = open_dataset("gta5", tmp_path)[0]
    np.testing.assert_array_equal(sample.labels, SEMANTIC)
    assert not sample.instances.any()


def test_cityscapes_instance_ids_number_instances_per_class_from_zero():
    ids = cityscapes_instance_ids(SEMANTIC, INSTANCES, CLASSES)
    np.testing.assert_array_equal(ids, [[7, 26000, 26000, 27000], [7, 24000, 26001, 27000]])


def test_cityscapes_writer_round_trip(tmp_path):
    write_cityscapes_sample(tmp_path, "val", "valmont", "valmont_000000_000019", IMAGE, SEMANTIC, INSTANCES, CLASSES)
    sample = open_dataset("cityscapes", tmp_path, "val")[0]
    np.testing.assert_array_equal(sample.labels, SEMANTIC)
    # same partition as the scene's instances, encoded labelId * 1000 + k
    np.testing.assert_array_equal(sample.instances, [[0, 26000, 26000, 27000], [0, 24000, 26001, 27000]])


def test_gta_plan_has_the_requested_share_of_truck_and_train_images():
    plan = gta_truck_train_plan(200, 0.1, seed=0)
    assert sum(t and r for t, r in plan) == 20
    assert 40 < sum(t != r for t, r in plan) < 160  # the others hold one of the two, or neither
    assert plan == gta_truck_train_plan(200, 0.1, seed=0)
