"""What the toy writers put on disk is what the readers of the real formats decode."""

from __future__ import annotations

import numpy as np
import pytest

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


TINY = {
    "enabled": True, "seed": 3, "height": 32, "width": 64, "synthia_images": 3, "gta_images": 4,
    "gta_truck_and_train_fraction": 0.5, "target_train_images": 2, "target_val_images": 2,
}


def _tree_bytes(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_synthesize_is_deterministic_and_independent_of_workers(tmp_path):
    from selfpanoptic.toy.domains import MARKER, synthesize_toy_domains

    trees = []
    for workers in (1, 2):
        roots = {name: tmp_path / f"w{workers}" / name for name in ("synthia", "gta", "target")}
        synthesize_toy_domains(TINY, roots, workers=workers, progress=False)
        trees.append(_tree_bytes(tmp_path / f"w{workers}"))
    assert trees[0] == trees[1]
    names = set(trees[0])
    assert "synthia/RGB/0000002.png" in names and "gta/labels/00004.png" in names
    assert "target/leftImg8bit/val/valmont/valmont_000002_000019_leftImg8bit.png" in names
    assert "target/gtFine/cityscapes_panoptic_val.json" in names
    assert f"target/{MARKER}" in names


def test_generator_refuses_to_replace_a_real_dataset(tmp_path):
    from selfpanoptic.errors import InputError
    from selfpanoptic.toy.domains import synthesize_toy_domains

    real = tmp_path / "real-gta"
    (real / "images").mkdir(parents=True)
    (real / "images" / "00001.png").write_bytes(b"precious")
    roots = {"synthia": tmp_path / "s", "gta": real, "target": tmp_path / "t"}
    with pytest.raises(InputError, match="toy generator did not write"):
        synthesize_toy_domains(TINY, roots, progress=False)
    assert (real / "images" / "00001.png").read_bytes() == b"precious"
    assert not (tmp_path / "s").exists()
