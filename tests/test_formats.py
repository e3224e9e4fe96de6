"""The official Cityscapes formats: id encoding, panoptic PNG + JSON, instance txt + masks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from selfpanoptic.classes import class_id
from selfpanoptic.formats.cityscapes_ids import (
    LABEL_DIVISOR, VOID_ID, check_image_id, cityscapes_categories, decode_instance_ids, encode_instance_ids,
)
from selfpanoptic.formats.instance_files import write_instance_prediction
from selfpanoptic.formats.panoptic_png import (
    ids_to_rgb, panoptic_json, read_panoptic_png, rgb_to_ids, write_panoptic_prediction,
)
from selfpanoptic.fusion import fuse_panoptic

from conftest import save_grey16

ROAD, SKY = class_id("road"), class_id("sky")
PERSON, CAR = class_id("person"), class_id("car")
# Cityscapes labelIds
ROAD_ID, SKY_ID, PERSON_ID, CAR_ID = 7, 23, 24, 26


# ---------------------------------------------------------------------------------------------
# Id encoding
# ---------------------------------------------------------------------------------------------


def test_encode_instance_ids_hand_values():
    assert LABEL_DIVISOR == 1000 and VOID_ID == 0
    assert encode_instance_ids(CAR_ID, 0) == 26000  # first car
    ids = encode_instance_ids([CAR_ID, CAR_ID, PERSON_ID, 33], [0, 1, 0, 999])
    assert ids.dtype == np.int64
    assert ids.tolist() == [26000, 26001, 24000, 33999]
    # broadcasting, and unsigned input
    np.testing.assert_array_equal(encode_instance_ids(np.uint16(26), np.arange(3, dtype=np.uint8)), [26000, 26001, 26002])
    with pytest.raises(ValueError, match="more than 1000 instances"):
        encode_instance_ids(CAR_ID, 1000)
    with pytest.raises(ValueError):
        encode_instance_ids(CAR_ID, -1)
    with pytest.raises(ValueError):
        encode_instance_ids(0, 5)  # would read back as labelId 5


def test_decode_instance_ids_hand_values():
    ids = np.array([
        [0, 7, 23],            # void, road, sky: stuff passes through
        [26, 26000, 26001],    # a car group (crowd, no instance), car 0, car 1
        [24000, 33999, 999],   # person 0, bicycle 999, the largest non-instance id
    ])
    label_id, k = decode_instance_ids(ids)
    np.testing.assert_array_equal(label_id, [[0, 7, 23], [26, 26, 26], [24, 33, 999]])
    np.testing.assert_array_equal(k, [[-1, -1, -1], [-1, 0, 1], [0, 999, -1]])
    assert label_id.shape == k.shape == ids.shape
    # void alone, and scalars
    assert [a.tolist() for a in decode_instance_ids(np.zeros((2, 2), np.int32))] == [[[0, 0], [0, 0]], [[-1, -1], [-1, -1]]]
    assert [int(a) for a in decode_instance_ids(26000)] == [26, 0]
    assert [int(a) for a in decode_instance_ids(7)] == [7, -1]
    # instanceIds PNGs are uint16: k = -1 needs a signed type
    label_id, k = decode_instance_ids(np.array([26001, 7], dtype=np.uint16))
    assert label_id.dtype == k.dtype == np.int32 and k.tolist() == [1, -1]
    assert decode_instance_ids(np.array([26001], dtype=np.int64))[0].dtype == np.int64
    with pytest.raises(ValueError):
        decode_instance_ids(np.array([7, -1]))
    with pytest.raises(ValueError):
        decode_instance_ids(np.array([7.0]))


def test_encode_decode_round_trip():
    rng = np.random.default_rng(0)
    label_id = rng.integers(1, 34, size=(5, 7))
    k = rng.integers(0, LABEL_DIVISOR, size=(5, 7))
    back_label, back_k = decode_instance_ids(encode_instance_ids(label_id, k))
    np.testing.assert_array_equal(back_label, label_id)
    np.testing.assert_array_equal(back_k, k)


def test_check_image_id():
    check_image_id("frankfurt_000000_000294")
    for bad in ("", "a b", "a/b", "a\\b", "a\tb"):
        with pytest.raises(ValueError):
            check_image_id(bad)


# ---------------------------------------------------------------------------------------------
# Panoptic PNG, JSON and instance files
# ---------------------------------------------------------------------------------------------


def test_rgb_round_trip():
    ids = np.array([[0, 7, 26000], [33999, 256 ** 3 - 1, 65536 + 258]])
    rgb = ids_to_rgb(ids)
    assert rgb.dtype == np.uint8 and rgb.shape == (2, 3, 3)
    np.testing.assert_array_equal(rgb[0, 2], [26000 % 256, 26000 // 256, 0])
    np.testing.assert_array_equal(rgb[1, 2], [2, 1, 1])
    np.testing.assert_array_equal(rgb_to_ids(rgb), ids)
    assert rgb_to_ids(rgb).dtype == np.int64
    with pytest.raises(ValueError):
        ids_to_rgb(np.array([256 ** 3]))


def small_scene():
    semantic = np.array([
        [SKY, SKY, SKY, SKY],
        [ROAD, CAR, CAR, PERSON],
        [ROAD, CAR, CAR, PERSON],
    ], dtype=np.uint8)
    instances = np.array([[0, 0, 0, 0], [0, 3, 3, 8], [0, 3, 3, 8]], dtype=np.int32)
    return semantic, instances


def test_written_panoptic_png_and_json_read_back(tmp_path):
    panoptic, segments = fuse_panoptic(*small_scene())
    annotation = write_panoptic_prediction(tmp_path / "pan", "valmont_000200_000019", panoptic, segments)
    assert annotation["image_id"] == "valmont_000200_000019"
    assert annotation["file_name"] == "valmont_000200_000019_panoptic.png"
    with Image.open(tmp_path / "pan" / annotation["file_name"]) as im:
        assert im.mode == "RGB"
        np.testing.assert_array_equal(rgb_to_ids(np.asarray(im)), panoptic)
    assert annotation["segments_info"] == [
        {k: s[k] for k in ("id", "category_id", "area", "bbox", "iscrowd")} for s in segments
    ]
    doc = panoptic_json([annotation], ["valmont_000200_000019"], *panoptic.shape)
    doc = json.loads(json.dumps(doc))  # serialisable
    assert doc["images"] == [{
        "id": "valmont_000200_000019", "file_name": "valmont_000200_000019_leftImg8bit.png",
        "width": 4, "height": 3,
    }]
    assert doc["annotations"] == [annotation]
    ids_in_png = set(np.unique(panoptic).tolist()) - {0}
    assert {s["id"] for s in doc["annotations"][0]["segments_info"]} == ids_in_png
    # a segment list that does not match the map is refused
    with pytest.raises(ValueError):
        write_panoptic_prediction(tmp_path / "pan", "x", panoptic, segments[:-1])


def test_categories_equal_create_panoptic_imgs(tmp_path):
    from cityscapesscripts.preparation.createPanopticImgs import convert2panoptic

    save_grey16(tmp_path / "gtFine" / "val" / "testcity" / "testcity_000000_000000_gtFine_instanceIds.png",
                np.array([[7, 26000], [23, 24000]]))
    (tmp_path / "out").mkdir()
    convert2panoptic(str(tmp_path / "gtFine"), str(tmp_path / "out"), setNames=["val"])
    official = json.loads((tmp_path / "out" / "cityscapes_panoptic_val.json").read_text())
    ours = panoptic_json([], ["testcity_000000_000000"], 2, 2)
    assert ours["categories"] == official["categories"] == cityscapes_categories()
    assert len(ours["categories"]) == 19
    assert [c["id"] for c in ours["categories"] if c["isthing"]] == [24, 25, 26, 27, 28, 31, 32, 33]


def test_instance_prediction_txt_and_masks(tmp_path):
    semantic, instances = small_scene()
    instances[0, 0] = 11  # an instance the fusion would drop (sky): not written
    classes = {3: CAR, 8: PERSON, 11: SKY}
    scores = {3: 0.75, 8: 0.123456789, 11: 0.5}
    txt = write_instance_prediction(tmp_path / "inst", "valmont_000200_000019", instances, classes, scores)
    assert txt == tmp_path / "inst" / "valmont_000200_000019.txt"
    lines = txt.read_text().splitlines()
    assert len(lines) == 2
    parsed = [line.split(" ") for line in lines]
    assert [(int(lid), float(score)) for _, lid, score in parsed] == [(CAR_ID, 0.75), (PERSON_ID, 0.123456789)]
    for (rel, _, _), instance_id in zip(parsed, [3, 8]):
        assert not Path(rel).is_absolute() and rel.startswith("masks/")
        with Image.open(txt.parent / rel) as im:
            assert im.mode == "L"
            mask = np.asarray(im)
        np.testing.assert_array_equal(mask, np.where(instances == instance_id, 255, 0))
    with pytest.raises(ValueError):
        write_instance_prediction(tmp_path / "inst", "a", instances, {3: CAR}, scores)
    empty = write_instance_prediction(tmp_path / "inst", "b", np.zeros((2, 2), np.int32), {}, {})
    assert empty.read_text() == ""


def test_read_panoptic_png_round_trip_of_written_prediction(tmp_path):
    panoptic, segments = fuse_panoptic(*small_scene())
    annotation = write_panoptic_prediction(tmp_path, "valmont_000200_000019", panoptic, segments)
    read = read_panoptic_png(tmp_path / annotation["file_name"])
    assert read.dtype == np.int32 and read.shape == panoptic.shape
    np.testing.assert_array_equal(read, panoptic)
    # large ids survive too (all 24 bits)
    ids = np.array([[0, 7, 26000], [33999, (1 << 24) - 1, 65536 + 258]])
    annotation = write_panoptic_prediction(
        tmp_path, "big", ids, [{"id": int(i), "category_id": 7, "area": 1, "bbox": [0, 0, 1, 1]} for i in ids.flat if i])
    np.testing.assert_array_equal(read_panoptic_png(tmp_path / annotation["file_name"]), ids)


def test_read_panoptic_png_rgb_and_rgba(tmp_path):
    ids = np.random.default_rng(5).integers(0, 1 << 24, size=(7, 9))
    Image.fromarray(ids_to_rgb(ids)).save(tmp_path / "rgb.png")
    rgba = np.dstack([ids_to_rgb(ids), np.full(ids.shape, 200, dtype=np.uint8)])
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    for name in ("rgb.png", "rgba.png"):
        read = read_panoptic_png(tmp_path / name)
        assert read.shape == ids.shape and (read == ids).all()
    Image.fromarray(np.zeros((2, 2), np.uint8), "L").save(tmp_path / "grey.png")
    with pytest.raises(ValueError, match="grey.png.*must be RGB"):
        read_panoptic_png(tmp_path / "grey.png")
