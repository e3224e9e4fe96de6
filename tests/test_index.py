"""``selfpanoptic index`` reports every bad file in one grouped message and applies the dataset's policies."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from selfpanoptic.cli import main

from conftest import GTA_LABEL_IDS, image_of, save_grey8, save_rgb


def index(capsys, *args: str) -> tuple[int, str, str]:
    """Run ``selfpanoptic index ... --quiet``: exit code, stdout, stderr."""
    code = main(["index", *args, "--quiet"])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def gta(root, out, *policies: str) -> list[str]:
    return ["--name", "gta", "--format", "gta5", "--root", str(root), "--out", str(out), *policies]


def assert_refused(code: int, err: str, out_path) -> None:
    assert code == 2 and "Traceback" not in err and not out_path.exists()


def test_every_kind_of_problem_is_reported_in_one_grouped_message(gta_root, tmp_path, capsys):
    save_rgb(gta_root / "images" / "00002.png", image_of(2, 4))  # no label file
    (gta_root / "images" / "00003.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")  # corrupt image
    save_grey8(gta_root / "labels" / "00003.png", GTA_LABEL_IDS)
    save_rgb(gta_root / "images" / "00004.png", image_of(2, 4))
    save_grey8(gta_root / "labels" / "00004.png", [[7, 99, 7, 7], [7, 7, 7, 7]])  # id out of range
    out = tmp_path / "m.csv"
    code, _, err = index(capsys, *gta(gta_root, out))
    assert_refused(code, err, out)
    assert f"dataset 'gta' (gta5 at {gta_root}) cannot be indexed" in err and "dataset 'gta5'" not in err
    assert "3 problem(s) in 3 file(s)" in err
    assert "images without their label file (1):" in err and "images/00002.png: no " in err
    assert "files that cannot be read (1):" in err and "images/00003.png: cannot decode image" in err
    assert "label files with ids out of range (1):" in err and "labels/00004.png: Cityscapes labelId(s) out of range: 99" in err
    assert "`datasets.gta.unpaired: skip` (`--unpaired skip`)" in err
    # groups come in a fixed order, each with its own fix
    assert err.index("without their label") < err.index("cannot be read") < err.index("out of range")
    assert err.count("fix:") == 3


def test_unpaired_skip_indexes_the_rest_and_warns(gta_root, tmp_path, capsys):
    save_rgb(gta_root / "images" / "00002.png", image_of(2, 4))
    save_grey8(gta_root / "labels" / "00009.png", GTA_LABEL_IDS)  # label without its image
    out = tmp_path / "m.csv"
    code, stdout, err = index(capsys, *gta(gta_root, out))
    assert_refused(code, err, out)
    assert "images without their label file (1):" in err and "label files without their image (1):" in err
    assert "labels/00009.png: no image " in err

    code, stdout, err = index(capsys, *gta(gta_root, out, "--unpaired", "skip"))
    assert code == 0
    assert list(pd.read_csv(out, dtype={"image_id": str})["image_id"]) == ["00001"]
    assert "warning: dataset 'gta': 2 file(s) handled by its policies" in err
    assert "images without their label file (1), left out of the manifest by `datasets.gta.unpaired: skip`" in err
    assert "label files without their image (1), left out" in err and "images/00002.png" in err
    assert "indexed 1 images of gta" in stdout and "2 file(s) left out" in stdout


def test_skip_does_not_let_corrupt_files_through(gta_root, tmp_path, capsys):
    save_rgb(gta_root / "images" / "00002.png", image_of(2, 4))
    save_rgb(gta_root / "images" / "00003.png", image_of(2, 4))
    save_grey8(gta_root / "labels" / "00003.png", [[7, 40, 7, 7], [7, 7, 7, 7]])
    out = tmp_path / "m.csv"
    code, _, err = index(capsys, *gta(gta_root, out, "--unpaired", "skip", "--size-mismatch", "skip"))
    assert_refused(code, err, out)
    assert "1 problem(s) in 1 file(s) (besides 1 file(s) that its policies let through)" in err
    assert "label files with ids out of range (1):" in err and "images without their label file" not in err


@pytest.fixture
def mismatched_gta(gta_root):
    """The fixture's pair plus one whose label is twice the size of its image (as some real GTA5 frames)."""
    save_rgb(gta_root / "images" / "00002.png", image_of(2, 4))
    save_grey8(gta_root / "labels" / "00002.png", np.repeat(np.repeat(GTA_LABEL_IDS, 2, 0), 2, 1))
    return gta_root


def test_size_mismatch_error_names_the_setting(mismatched_gta, tmp_path, capsys):
    out = tmp_path / "m.csv"
    code, _, err = index(capsys, *gta(mismatched_gta, out))
    assert_refused(code, err, out)
    assert "dataset 'gta'" in err and "label files whose size differs from their image (1):" in err
    assert "labels/00002.png: label 8x4 does not match its image" in err and "images/00002.png (4x2)" in err
    assert "`datasets.gta.size_mismatch: resize` (`--size-mismatch resize`)" in err


def test_size_mismatch_skip_leaves_the_pair_out(mismatched_gta, tmp_path, capsys):
    out = tmp_path / "m.csv"
    code, stdout, err = index(capsys, *gta(mismatched_gta, out, "--size-mismatch", "skip"))
    assert code == 0
    assert list(pd.read_csv(out, dtype={"image_id": str})["image_id"]) == ["00001"]
    assert "label files whose size differs from their image (1), left out of the manifest" in err
    assert "`datasets.gta.size_mismatch: skip`" in err and "1 file(s) left out" in stdout


def test_size_mismatch_resize_keeps_the_pair_and_the_cache_resizes_it(mismatched_gta, tmp_path, capsys):
    from selfpanoptic.intermediates import DatasetCache

    out = tmp_path / "m.csv"
    code, stdout, err = index(capsys, *gta(mismatched_gta, out, "--size-mismatch", "resize"))
    assert code == 0
    frame = pd.read_csv(out, dtype={"image_id": str})
    assert list(frame["image_id"]) == ["00001", "00002"] and list(frame["label_resized"]) == [False, True]
    # statistics count the label at its image's size, as the cache will read it
    assert list(frame["height"]) == [2, 2] and list(frame["pixels_sky"]) == [2, 2]
    assert "label resized to its image (nearest) by `datasets.gta.size_mismatch: resize`" in err
    assert "1 label(s) resized" in stdout

    cache = tmp_path / "c.h5"
    assert main(["cache", "--manifest", str(out), "--out", str(cache),
                 "--data-settings", '{"height": 2, "width": 4}', "--quiet"]) == 0
    with DatasetCache.open(cache) as h5:
        np.testing.assert_array_equal(h5["labels"][1], h5["labels"][0])


def test_long_groups_are_cut_with_a_count(gta_root, tmp_path, capsys):
    for i in range(25):
        save_rgb(gta_root / "images" / f"1{i:04d}.png", image_of(2, 4))
    out = tmp_path / "m.csv"
    code, _, err = index(capsys, *gta(gta_root, out))
    assert_refused(code, err, out)
    assert "images without their label file (25):" in err and "  ... and 5 more" in err
    assert err.count("images/1") == 20


def test_everything_skipped_is_still_an_error(gta_root, tmp_path, capsys):
    (gta_root / "labels" / "00001.png").unlink()
    out = tmp_path / "m.csv"
    code, _, err = index(capsys, *gta(gta_root, out, "--unpaired", "skip"))
    assert_refused(code, err, out)
    assert "dataset 'gta'" in err and "no sample is left to index" in err and "images without their label file (1)" in err


def test_cityscapes_without_split_names_the_option(cityscapes_root, tmp_path, capsys):
    out = tmp_path / "m.csv"
    code, _, err = index(capsys, "--name", "target", "--format", "cityscapes", "--root", str(cityscapes_root),
                         "--out", str(out))
    assert_refused(code, err, out)
    assert "--split is missing" in err and "fix: add --split with one of" in err and "(train, val)" in err
    assert "datasets.target.train_split" in err


def test_unknown_split_lists_the_splits_found(cityscapes_root, tmp_path, capsys):
    out = tmp_path / "m.csv"
    code, _, err = index(capsys, "--name", "target", "--format", "cityscapes", "--root", str(cityscapes_root),
                         "--split", "tset", "--out", str(out))
    assert_refused(code, err, out)
    assert "split 'tset' not found" in err and "choose one of the splits found, train, val" in err and "--split" in err


def test_root_that_is_a_file_names_the_option(tmp_path, capsys):
    root = tmp_path / "gta.zip"
    root.write_bytes(b"PK")
    out = tmp_path / "m.csv"
    code, _, err = index(capsys, *gta(root, out))
    assert_refused(code, err, out)
    assert f"{root}: --root is a file, not a dataset folder" in err and "datasets.gta.root" in err


def test_split_for_a_format_without_splits(gta_root, tmp_path, capsys):
    out = tmp_path / "m.csv"
    code, _, err = index(capsys, *gta(gta_root, out, "--split", "train"))
    assert_refused(code, err, out)
    assert "--split train was given, but the gta5 format has no splits" in err and "fix: drop --split" in err


def test_synthia_and_cityscapes_policies_name_their_own_dataset(synthia_root, cityscapes_root, tmp_path, capsys):
    (synthia_root / "RGB" / "0000001.png").unlink()
    out = tmp_path / "m.csv"
    code, _, err = index(capsys, "--name", "synthia", "--format", "synthia", "--root", str(synthia_root), "--out", str(out))
    assert_refused(code, err, out)
    assert "label files without their image (1):" in err and "`datasets.synthia.unpaired: skip`" in err

    (cityscapes_root / "gtFine" / "val" / "lindau" / "lindau_000000_000019_gtFine_instanceIds.png").unlink()
    code, _, err = index(capsys, "--name", "target", "--format", "cityscapes", "--root", str(cityscapes_root),
                         "--split", "val", "--out", str(out))
    assert_refused(code, err, out)
    assert "images without their label file (1):" in err and "_gtFine_instanceIds.png" in err
    assert "`datasets.target.unpaired: skip`" in err


def test_one_size_refuses_a_split_of_several_sizes_before_writing(tmp_path, capsys):
    """The workflow asks --one-size of the target's val split, predicted at its files' resolution."""
    for name, size in (("a.png", (4, 8)), ("b.png", (4, 8)), ("c.jpg", (6, 8))):
        save_rgb(tmp_path / "val" / name, np.zeros((*size, 3), np.uint8))
    args = ["--name", "target", "--format", "images", "--root", str(tmp_path), "--split", "val", "--glob", "val/*.*"]
    code, _, err = index(capsys, *args, "--out", str(tmp_path / "one.csv"), "--one-size")
    assert_refused(code, err, tmp_path / "one.csv")
    assert "the images of this split differ in size: 8x4 (2 images, e.g. a.png), 8x6 (1 image, e.g. c.jpg)" in err
    code, out, _ = index(capsys, *args, "--out", str(tmp_path / "any.csv"))
    assert code == 0 and "indexed 3 images" in out
