"""The one panoptic inference path (:mod:`selfpanoptic.panoptic`): clean-up, fusion and the official files.

``predict-panoptic`` end to end is tested in ``test_predict_panoptic.py``; fusion and clean-up on
their own in ``test_fusion.py``.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from selfpanoptic.classes import SYNTHIA16_LABEL_IDS, SYNTHIA16_TRAIN_IDS, class_id
from selfpanoptic.config import validate_config
from selfpanoptic.formats.cityscapes_ids import cityscapes_categories
from selfpanoptic.formats.panoptic_png import panoptic_document, read_panoptic_png
from selfpanoptic.fusion import clean_instance_masks, fuse_panoptic
from selfpanoptic.panoptic import fuse, write_panoptic_files
from selfpanoptic.settings import FusionSettings, MorphologySettings

ROAD, CAR = class_id("road"), class_id("car")


def scene() -> tuple[np.ndarray, np.ndarray]:
    """Road with two cars: a 4x4 block (instance 1) and a one-pixel speck (instance 2)."""
    semantic = np.full((8, 10), ROAD, dtype=np.uint8)
    instances = np.zeros((8, 10), dtype=np.int32)
    semantic[2:6, 2:6] = CAR
    instances[2:6, 2:6] = 1
    semantic[1, 8] = CAR
    instances[1, 8] = 2
    return semantic, instances


def test_fuse_cleans_the_instances_only_when_asked():
    semantic, instances = scene()
    plain_ids, plain_segments = fuse(semantic, instances, FusionSettings())
    expected_ids, expected_segments = fuse_panoptic(semantic, instances)
    np.testing.assert_array_equal(plain_ids, expected_ids)
    assert plain_segments == expected_segments
    assert (plain_ids == 26001).sum() == 1  # the speck is a car of its own

    morphology = MorphologySettings(opening_radius=0, closing_radius=0, min_size=2)
    ids, segments = fuse(semantic, instances, FusionSettings(stuff_min_area=3, morphology=morphology))
    cleaned = clean_instance_masks(instances, 0, 0, 2)
    expected_ids, expected_segments = fuse_panoptic(semantic, cleaned, 3)
    np.testing.assert_array_equal(ids, expected_ids)
    assert segments == expected_segments
    assert sorted(s["id"] for s in segments) == [7, 26000]  # speck removed; its pixel is void, not road
    assert ids[1, 8] == 0


def test_panoptic_files_are_written_image_by_image_then_the_json(tmp_path):
    semantic, instances = scene()
    images = [{"id": "x_000000_000001", "file_name": "x.png", "height": 8, "width": 10},
              {"id": "x_000000_000002", "file_name": "y.png", "height": 8, "width": 10}]
    written = []

    def fused():
        for image in images:
            if written:  # the previous image's PNG is on disk before the next image is fused
                assert (tmp_path / "panoptic" / f"{written[-1]}_panoptic.png").is_file()
            written.append(image["id"])
            yield image["id"], *fuse(semantic, instances, FusionSettings())

    annotations = write_panoptic_files(tmp_path, fused(), images, cityscapes_categories())
    document = json.loads((tmp_path / "panoptic.json").read_text())
    assert document == {"images": images, "annotations": annotations, "categories": cityscapes_categories()}
    assert [a["file_name"] for a in annotations] == ["x_000000_000001_panoptic.png", "x_000000_000002_panoptic.png"]
    np.testing.assert_array_equal(read_panoptic_png(tmp_path / "panoptic" / annotations[1]["file_name"]),
                                  fuse(semantic, instances, FusionSettings())[0])

    with pytest.raises(ValueError, match="annotation for unknown image id 'other'"):
        write_panoptic_files(tmp_path / "again", [("other", *fuse(semantic, instances, FusionSettings()))], images, [])


def test_panoptic_document_refuses_repeated_images_and_annotations():
    images = [{"id": "a"}, {"id": "b"}]
    assert panoptic_document(images, [{"image_id": "a"}], [])["images"] == images
    with pytest.raises(ValueError, match="image_ids must be unique"):
        panoptic_document([{"id": "a"}, {"id": "a"}], [], [])
    with pytest.raises(ValueError, match="two annotations for image id 'a'"):
        panoptic_document(images, [{"image_id": "a"}, {"image_id": "a"}], [])


def test_fusion_settings_read_the_validated_panoptic_section():
    section = validate_config({"panoptic": {"stuff_min_area": 7, "morphology": {
        "opening_radius": 2, "closing_radius": 3, "min_size": 11}}})["panoptic"]
    assert FusionSettings.from_config(section) == FusionSettings(7, MorphologySettings(2, 3, 11))
    section["morphology"]["enabled"] = False
    assert FusionSettings.from_config(section) == FusionSettings(7, None)


def test_the_synthia_subset_as_label_ids():
    assert len(SYNTHIA16_LABEL_IDS) == 16
    assert {22, 27, 31}.isdisjoint(SYNTHIA16_LABEL_IDS)  # terrain, truck, train
    assert SYNTHIA16_LABEL_IDS[0] == 7 and SYNTHIA16_LABEL_IDS[-1] == 33 and len(SYNTHIA16_TRAIN_IDS) == 16
