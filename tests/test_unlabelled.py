"""Unlabelled target splits and the image-folder target: reader, index, cache, audit, labelled-ness."""

from __future__ import annotations

import json
import shutil

import h5py
import numpy as np
import pandas as pd
import pytest

from selfpanoptic.cli import main
from selfpanoptic.data import ImageFolderDataset, open_dataset, target_split_labelled
from selfpanoptic.errors import InputError

from conftest import (CITYSCAPES_EXPECTED_INSTANCES, CITYSCAPES_EXPECTED_TRAIN_IDS, CITYSCAPES_INSTANCE_IDS,
                      CITYSCAPES_LABEL_IDS, image_of, save_grey16, save_grey8, save_rgb)


def run(capsys, *args: str) -> tuple[int, str, str]:
    """Run ``selfpanoptic ...``: exit code, stdout, stderr."""
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def folder(tmp_path):
    """An image folder: train/a/x.png, train/b/y.jpg (no labels); val/z.png with gtFine-style labels."""
    root = tmp_path / "photos"
    save_rgb(root / "train" / "a" / "x.png", image_of(2, 4, 1))
    save_rgb(root / "train" / "b" / "y.png", image_of(2, 4, 2))
    save_rgb(root / "val" / "z_leftImg8bit.png", image_of(2, 4, 3))
    save_grey8(tmp_path / "labels" / "city" / "z_gtFine_labelIds.png", CITYSCAPES_LABEL_IDS)
    save_grey16(tmp_path / "labels" / "city" / "z_gtFine_instanceIds.png", CITYSCAPES_INSTANCE_IDS)
    return root


def images_index(root, out, split, glob, labels=None, *policies):
    args = ["index", "--name", "target", "--format", "images", "--root", str(root), "--split", split,
            "--glob", glob, "--out", str(out), "--quiet", *policies]
    return args + (["--labels", str(labels)] if labels else [])


def test_image_folder_reads_ids_from_stems_and_unlabelled_samples_as_ignore(folder):
    reader = open_dataset("images", folder, "train", options={"glob": "train/**/*.png", "labels": None})
    assert [f.image_id for f in reader.files] == ["x", "y"] and not reader.labelled
    sample = reader[0]
    assert sample.image.shape == (2, 4, 3)
    assert (sample.labels == 255).all() and sample.labels.dtype == np.uint8
    assert (sample.instances == 0).all() and sample.instances.dtype == np.int32


def test_image_folder_val_labels_decode_as_cityscapes(folder):
    reader = ImageFolderDataset(folder, "val", glob="val/*.png", labels=folder.parent / "labels")
    assert reader.labelled and [f.image_id for f in reader.files] == ["z"]  # _leftImg8bit dropped
    labels, instances = reader.decode_labels(reader.files[0])
    np.testing.assert_array_equal(labels, CITYSCAPES_EXPECTED_TRAIN_IDS)
    np.testing.assert_array_equal(instances, CITYSCAPES_EXPECTED_INSTANCES)


def test_index_and_cache_of_an_image_folder_record_that_it_is_unlabelled(folder, tmp_path, capsys):
    out = tmp_path / "train.csv"
    code, stdout, err = run(capsys, *images_index(folder, out, "train", "train/**/*.png"))
    assert code == 0, err
    assert "unlabelled" in stdout
    frame = pd.read_csv(out, keep_default_na=False, dtype={"image_id": str})
    assert list(frame["image_id"]) == ["x", "y"] and list(frame["label_path"]) == ["", ""]
    assert not frame["labelled"].any() and (frame["pixels_ignore"] == 8).all()
    assert json.loads(frame["reader_options"][0]) == {"glob": "train/**/*.png", "labels": None}

    cache = tmp_path / "train.h5"
    assert main(["cache", "--manifest", str(out), "--out", str(cache), "--data-settings",
                 '{"height": 2, "width": 4}', "--quiet"]) == 0
    with h5py.File(cache) as h5:
        assert not h5.attrs["labelled"]
        assert (h5["labels"][()] == 255).all() and (h5["instances"][()] == 0).all()
        np.testing.assert_array_equal(h5["images"][0], image_of(2, 4, 1))

    code, stdout, _ = run(capsys, "audit", str(cache), "--ground-truth", str(cache))
    assert code == 0
    assert "unlabelled: the split has no label files" in stdout
    assert stdout.count("not graded:") == 1 and "precision and recall" in stdout


def test_index_of_labelled_image_folder_val(folder, tmp_path, capsys):
    out = tmp_path / "val.csv"
    assert run(capsys, *images_index(folder, out, "val", "val/*.png", folder.parent / "labels"))[0] == 0
    frame = pd.read_csv(out, keep_default_na=False, dtype={"image_id": str})
    assert frame["labelled"].all() and frame["label_path"][0].endswith("z_gtFine_labelIds.png")
    assert frame["pixels_car"][0] == 2

    code, _, err = run(capsys, "panoptic-gt", "--manifest", str(out), "--out-json", str(tmp_path / "gt.json"),
                       "--out-folder", str(tmp_path / "gt"), "--quiet")
    assert code == 0, err
    gt = json.loads((tmp_path / "gt.json").read_text())
    assert [image["id"] for image in gt["images"]] == ["z"]
    assert (tmp_path / "gt" / gt["annotations"][0]["file_name"]).is_file()


@pytest.mark.parametrize("case, expected", [
    ("no_match", "no image matches 'train/*.jpg' below the image folder"),
    ("corrupt", "cannot decode image"),
    ("duplicate", "1 image id(s) occur more than once"),
    ("size", "label files whose size differs from their image (1)"),
    ("missing_label", "images without their label file (1)"),
])
def test_bad_image_folders_stop_the_index_with_one_message(folder, tmp_path, capsys, case, expected):
    glob, labels = "train/**/*.png", None
    if case == "no_match":
        glob = "train/*.jpg"
    elif case == "corrupt":
        (folder / "train" / "a" / "x.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    elif case == "duplicate":
        save_rgb(folder / "train" / "c" / "x.png", image_of(2, 4))
    elif case == "size":
        glob, labels = "val/*.png", folder.parent / "labels"
        save_grey8(labels / "city" / "z_gtFine_labelIds.png", np.full((3, 4), 7))
        save_grey16(labels / "city" / "z_gtFine_instanceIds.png", np.full((3, 4), 7))
    else:
        glob, labels = "val/*.png", folder.parent / "labels"
        save_rgb(folder / "val" / "w.png", image_of(2, 4))
    out = tmp_path / "m.csv"
    code, _, err = run(capsys, *images_index(folder, out, "train", glob, labels))
    assert code == 2 and "Traceback" not in err and not out.exists()
    assert expected in err and "fix:" in err


def test_size_mismatch_policy_applies_to_image_folder_labels(folder, tmp_path, capsys):
    labels = folder.parent / "labels"
    save_grey8(labels / "city" / "z_gtFine_labelIds.png", np.full((3, 4), 7))
    save_grey16(labels / "city" / "z_gtFine_instanceIds.png", np.full((3, 4), 7))
    out = tmp_path / "m.csv"
    code, _, err = run(capsys, *images_index(folder, out, "val", "val/*.png", labels, "--size-mismatch", "resize"))
    assert code == 0 and "label resized to its image" in err


def test_cityscapes_split_without_gtfine_is_unlabelled_but_partial_labels_are_unpaired(cityscapes_root, tmp_path,
                                                                                      capsys):
    target = {"format": "cityscapes", "root": str(cityscapes_root), "train_split": "train", "val_split": "val"}
    assert target_split_labelled(target, "train")
    shutil.rmtree(cityscapes_root / "gtFine" / "train")
    assert not target_split_labelled(target, "train") and target_split_labelled(target, "val")
    assert target_split_labelled(target, "train", toy=True)  # the toy generator writes labels
    out = tmp_path / "train.csv"
    args = ["index", "--name", "target", "--format", "cityscapes", "--root", str(cityscapes_root), "--split"]
    assert run(capsys, *args, "train", "--out", str(out), "--quiet")[0] == 0
    frame = pd.read_csv(out, keep_default_na=False)
    assert len(frame) == 1 and not frame["labelled"].any() and frame["instance_path"][0] == ""

    save_rgb(cityscapes_root / "leftImg8bit" / "val" / "lindau" / "lindau_000001_000019_leftImg8bit.png",
             image_of(2, 4))
    code, _, err = run(capsys, *args, "val", "--out", str(tmp_path / "val.csv"), "--quiet")
    assert code == 2 and "images without their label file (1)" in err


def test_image_folder_labelled_ness_comes_from_the_config():
    images = {"format": "images", "root": "x", "val_labels": None}
    assert not target_split_labelled(images, "train") and not target_split_labelled(images, "val")
    assert target_split_labelled({**images, "val_labels": "labels"}, "val")


def test_image_folder_refuses_a_missing_labels_folder(folder):
    with pytest.raises(InputError, match="labels folder does not exist"):
        ImageFolderDataset(folder, "val", glob="val/*.png", labels=folder / "nowhere")
