"""Readers decode each real format to trainIds and instance ids, and reject bad files clearly."""

from __future__ import annotations

import numpy as np
import pytest

from selfpanoptic.data import CityscapesDataset, GTA5Dataset, SynthiaDataset, open_dataset
from selfpanoptic.data.problems import DatasetProblemsError
from selfpanoptic.errors import InputError

from conftest import (
    CITYSCAPES_EXPECTED_INSTANCES, CITYSCAPES_EXPECTED_TRAIN_IDS, GTA_EXPECTED_TRAIN_IDS,
    SYNTHIA_EXPECTED_TRAIN_IDS, SYNTHIA_INSTANCES, image_of, save_grey8, save_rgb,
)


def test_synthia_reader_maps_class_channel_and_keeps_instances(synthia_root):
    ds = SynthiaDataset(synthia_root)
    assert len(ds) == 2
    sample = ds[1]
    assert sample.image_id == "0000001"
    assert sample.image.dtype == np.uint8 and sample.image.shape == (2, 4, 3)
    np.testing.assert_array_equal(sample.image, image_of(2, 4, 1))
    np.testing.assert_array_equal(sample.labels, SYNTHIA_EXPECTED_TRAIN_IDS)
    # the truck pixel (class 0 = void) keeps its instance id, as in the real Synthia
    np.testing.assert_array_equal(sample.instances, SYNTHIA_INSTANCES)
    assert sample.instances.dtype == np.int32


def test_gta5_reader_reads_palette_indices_as_label_ids(gta_root):
    sample = GTA5Dataset(gta_root)[0]
    assert sample.image_id == "00001"
    np.testing.assert_array_equal(sample.labels, GTA_EXPECTED_TRAIN_IDS)
    assert not sample.instances.any()


@pytest.mark.parametrize("split, city", [("train", "aachen"), ("val", "lindau")])
def test_cityscapes_reader_splits_and_instances(cityscapes_root, split, city):
    ds = CityscapesDataset(cityscapes_root, split=split)
    assert [f.image_id for f in ds.files] == [f"{city}_000000_000019"]
    sample = ds[0]
    np.testing.assert_array_equal(sample.labels, CITYSCAPES_EXPECTED_TRAIN_IDS)
    # stuff values (< 1000) and the caravan instance (not one of the 19 classes) become 0
    np.testing.assert_array_equal(sample.instances, CITYSCAPES_EXPECTED_INSTANCES)


def test_resize_to_working_resolution_uses_nearest_for_ids(cityscapes_root):
    sample = open_dataset("cityscapes", cityscapes_root, "val", size=(4, 8))[0]
    assert sample.image.shape == (4, 8, 3)
    np.testing.assert_array_equal(sample.labels, np.repeat(np.repeat(CITYSCAPES_EXPECTED_TRAIN_IDS, 2, 0), 2, 1))
    np.testing.assert_array_equal(sample.instances, np.repeat(np.repeat(CITYSCAPES_EXPECTED_INSTANCES, 2, 0), 2, 1))


def test_missing_root_names_the_folder_and_the_layout(tmp_path):
    with pytest.raises(InputError) as info:
        SynthiaDataset(tmp_path / "nowhere")
    message = str(info.value)
    assert "nowhere" in message and "does not exist" in message and "GT/LABELS" in message


def test_missing_split_is_reported(cityscapes_root):
    with pytest.raises(InputError, match="split 'test' not found"):
        CityscapesDataset(cityscapes_root, split="test")


def test_missing_label_file_lists_every_image(gta_root):
    save_rgb(gta_root / "images" / "00002.png", image_of(2, 4))
    save_rgb(gta_root / "images" / "00003.png", image_of(2, 4))
    ds = GTA5Dataset(gta_root)  # listing keeps the complete pairs; the index decides about the rest
    assert [f.image_id for f in ds.files] == ["00001"]
    assert [p.path.name for p in ds.unpaired] == ["00002.png", "00003.png"]
    with pytest.raises(DatasetProblemsError) as info:
        ds.check_all()
    message = str(info.value)
    assert "images without their label file (2):" in message and "00002.png" in message and "00003.png" in message


def test_label_file_without_image_is_listed(cityscapes_root):
    from conftest import CITYSCAPES_LABEL_IDS

    save_grey8(cityscapes_root / "gtFine" / "val" / "lindau" / "lindau_000001_000019_gtFine_labelIds.png",
               CITYSCAPES_LABEL_IDS)
    ds = CityscapesDataset(cityscapes_root, split="val")
    assert len(ds) == 1
    (problem,) = ds.unpaired
    assert problem.kind == "missing_image" and problem.path.name == "lindau_000001_000019_gtFine_labelIds.png"
    assert str(problem.path).endswith("lindau_000001_000019_gtFine_labelIds.png")
    assert "leftImg8bit/val/lindau/lindau_000001_000019_leftImg8bit.png" in problem.detail


def test_reading_a_mismatched_pair_resizes_the_label_to_its_image(gta_root):
    """What the cache does with a pair the index let through under size_mismatch: resize."""
    save_grey8(gta_root / "labels" / "00001.png", np.repeat(np.repeat(np.array([[23, 21], [27, 31]]), 2, 0), 2, 1))
    sample = GTA5Dataset(gta_root, size=(4, 8))[0]
    assert sample.image.shape == (4, 8, 3) and sample.labels.shape == (4, 8)
    # label 4x4 -> its image's 4x2 (nearest) -> the working 8x4
    expected = np.array([[10, 10, 8, 8], [14, 14, 16, 16]])
    np.testing.assert_array_equal(sample.labels, np.repeat(np.repeat(expected, 2, 0), 2, 1))


def test_label_id_out_of_range(gta_root):
    save_grey8(gta_root / "labels" / "00001.png", np.array([[7, 7, 40, 7], [7, 7, 7, 7]]))
    with pytest.raises(InputError, match=r"00001.png: Cityscapes labelId\(s\) out of range: 40"):
        GTA5Dataset(gta_root).read_labels(0)


def test_size_mismatch_names_both_files(gta_root):
    save_grey8(gta_root / "labels" / "00001.png", np.full((3, 4), 7))
    with pytest.raises(InputError) as info:
        GTA5Dataset(gta_root).read_labels(0)
    assert "labels/00001.png" in str(info.value) and "images/00001.png" in str(info.value)


def test_corrupt_png_is_reported_with_its_path(synthia_root):
    label = synthia_root / "GT" / "LABELS" / "0000000.png"
    label.write_bytes(label.read_bytes()[:40])
    with pytest.raises(DatasetProblemsError) as info:
        SynthiaDataset(synthia_root).check_all()
    assert "0000000.png" in str(info.value) and "cannot decode" in str(info.value)


def test_eight_bit_synthia_label_is_rejected(synthia_root):
    save_rgb(synthia_root / "GT" / "LABELS" / "0000000.png", np.zeros((2, 4, 3)))
    with pytest.raises(InputError, match="expected a 16-bit PNG"):
        SynthiaDataset(synthia_root).read_labels(0)


def test_image_folder_pairs_labels_of_images_whose_names_hold_spaces(tmp_path):
    """Ids make whitespace `_` (the official instance txt is space-separated); label files are
    paired by the same rule, so `a b.png` keeps its `a b_gtFine_*` labels."""
    from PIL import Image

    from selfpanoptic.data.images import ImageFolderDataset

    images, labels = tmp_path / "images", tmp_path / "labels"
    images.mkdir(), labels.mkdir()
    Image.fromarray(np.zeros((4, 6, 3), np.uint8)).save(images / "a b.png")
    for kind in ("labelIds", "instanceIds"):
        Image.fromarray(np.full((4, 6), 7, np.uint8)).save(labels / f"a b_gtFine_{kind}.png")
    samples, problems = ImageFolderDataset(images, glob="*.png", labels=labels).list_files()
    assert problems == []
    assert [(s.image_id, s.label_path.name) for s in samples] == [("a_b", "a b_gtFine_labelIds.png")]
