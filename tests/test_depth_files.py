"""Depth files: toy writers -> readers (inverse depth in 1/m, NaN = invalid) and the cache's ``inverse_depth``."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from selfpanoptic.cli import main
from selfpanoptic.data import open_dataset
from selfpanoptic.data.cityscapes import CITYSCAPES_BASELINE_M, cityscapes_focal_px
from selfpanoptic.data.problems import DataFileError
from selfpanoptic.errors import InputError
from selfpanoptic.pngio import read_single_channel
from selfpanoptic.toy.formats import write_cityscapes_sample, write_synthia_sample
from selfpanoptic.toy.scenes.codes import SKY_DEPTH_M

from conftest import image_of, save_grey16, save_rgb16

ROAD = 0
SEMANTIC = np.zeros((4, 8), dtype=np.uint8)
INSTANCES = np.zeros((4, 8), dtype=np.int32)
IMAGE = image_of(4, 8)
DEPTH = np.repeat(np.array([2.0, 10.0, 50.0, 10.0], dtype=np.float32)[:, None], 8, axis=1)
DEPTH[0, :2] = SKY_DEPTH_M
CITY_STEM = "valmont_000000_000019"
DISPARITY = ("disparity", "val", "valmont", f"{CITY_STEM}_disparity.png")


def test_synthia_depth_round_trip(tmp_path):
    write_synthia_sample(tmp_path, "0000000", IMAGE, SEMANTIC, INSTANCES, depth=DEPTH)
    np.testing.assert_array_equal(read_single_channel(tmp_path / "Depth" / "0000000.png")[0, :3], [65535, 65535, 200])
    reader = open_dataset("synthia", tmp_path)
    assert reader.depth_path(reader.files[0]) == tmp_path / "Depth" / "0000000.png"
    inverse = reader[0].inverse_depth
    assert inverse.dtype == np.float32 and inverse.shape == (4, 8)
    near = DEPTH < SKY_DEPTH_M
    np.testing.assert_allclose(inverse[near], 1 / DEPTH[near], rtol=1e-3)
    np.testing.assert_allclose(inverse[~near], 100 / 65535, rtol=1e-6)  # sky saturates at 655.35 m

    # nearest resizing to the working size keeps the values
    resized = open_dataset("synthia", tmp_path, size=(8, 16))[0].inverse_depth
    assert resized.shape == (8, 16) and resized.dtype == np.float32
    np.testing.assert_array_equal(resized[::2, ::2], inverse)


def test_cityscapes_disparity_round_trip(tmp_path):
    write_cityscapes_sample(tmp_path, "val", "valmont", CITY_STEM, IMAGE, SEMANTIC, INSTANCES, {}, depth=DEPTH)
    raw = read_single_channel(tmp_path.joinpath(*DISPARITY))
    scale = CITYSCAPES_BASELINE_M * cityscapes_focal_px(8)  # baseline * fx at this width, metres * pixels
    expected_raw = np.where(DEPTH < SKY_DEPTH_M, np.round(scale / DEPTH * 256 + 1), 1)
    np.testing.assert_array_equal(raw, expected_raw)

    reader = open_dataset("cityscapes", tmp_path, "val")
    assert reader.depth_path(reader.files[0]) == tmp_path.joinpath(*DISPARITY)
    inverse = reader[0].inverse_depth
    assert inverse.dtype == np.float32 and inverse.shape == (4, 8)
    # exactly the quantised disparity (p - 1) / 256 over baseline * fx; the sky is at infinity
    np.testing.assert_allclose(inverse, (expected_raw - 1) / 256 / scale, rtol=1e-5, atol=1e-9)
    assert (inverse[0, :2] == 0).all()
    # and within half a quantisation step (1/512 px) of the true inverse depth
    near = DEPTH < SKY_DEPTH_M
    assert np.all(np.abs(inverse[near] - 1 / DEPTH[near]) <= 0.5 / 256 / scale + 1e-7)


def test_invalid_pixels_are_nan(synthia_root, cityscapes_root):
    # Synthia: value 0 is invalid; single-channel and 3-channel 16-bit files are both read (channel 0)
    save_grey16(synthia_root / "Depth" / "0000000.png", np.array([[0, 100, 200, 400]] * 2))
    three = np.zeros((2, 4, 3), dtype=np.uint16)
    three[..., 0] = [[500, 0, 1000, 1000]] * 2
    three[..., 1] = 7  # other channels are ignored
    save_rgb16(synthia_root / "Depth" / "0000001.png", three)
    reader = open_dataset("synthia", synthia_root)
    np.testing.assert_allclose(reader[0].inverse_depth[0], [np.nan, 1.0, 0.5, 0.25])
    np.testing.assert_allclose(reader[1].inverse_depth[1], [0.2, np.nan, 0.1, 0.1])

    # Cityscapes: p = 0 is invalid, p = 1 is disparity 0 (infinitely far)
    save_grey16(cityscapes_root.joinpath("disparity", "val", "lindau", "lindau_000000_000019_disparity.png"),
                np.array([[0, 1, 257, 0]] * 2))
    inverse = open_dataset("cityscapes", cityscapes_root, "val")[0].inverse_depth
    np.testing.assert_allclose(inverse[0], [np.nan, 0.0, 1 / (CITYSCAPES_BASELINE_M * cityscapes_focal_px(4)), np.nan],
                               rtol=1e-6)
    # the train split's sample has no disparity file
    reader = open_dataset("cityscapes", cityscapes_root, "train")
    assert reader.depth_path(reader.files[0]) is None and reader[0].inverse_depth is None


def test_depth_file_of_another_size_names_the_file(synthia_root):
    depth = synthia_root / "Depth" / "0000000.png"
    save_grey16(depth, np.full((3, 4), 100))
    with pytest.raises(DataFileError) as info:
        open_dataset("synthia", synthia_root)[0]
    assert info.value.path == depth and info.value.kind == "depth_size"
    assert "must have the image's width and height" in str(info.value) and "4x3" in str(info.value)


def test_unreadable_or_8_bit_depth_file_names_the_file(synthia_root, cityscapes_root):
    depth = synthia_root / "Depth" / "0000000.png"
    save_grey16(depth, np.full((2, 4), 100))
    depth.write_bytes(depth.read_bytes()[:40])
    with pytest.raises(InputError, match="cannot decode") as info:
        open_dataset("synthia", synthia_root)[0]
    assert info.value.path == depth and "fix: re-export" in str(info.value)

    from conftest import save_grey8

    disparity = cityscapes_root.joinpath("disparity", "val", "lindau", "lindau_000000_000019_disparity.png")
    save_grey8(disparity, np.ones((2, 4)))
    with pytest.raises(InputError, match="expected a 16-bit single-channel disparity PNG") as info:
        open_dataset("cityscapes", cityscapes_root, "val")[0]
    assert info.value.path == disparity


def _index(root, name, fmt, out, capsys):
    assert main(["index", "--name", name, "--format", fmt, "--root", str(root), "--out", str(out), "--quiet"]) == 0
    capsys.readouterr()
    return out


def _cache(manifest, out, capsys):
    assert main(["cache", "--manifest", str(manifest), "--out", str(out),
                 "--data-settings", '{"height": 2, "width": 4}', "--quiet"]) == 0
    capsys.readouterr()
    return out


def test_cache_stores_inverse_depth_only_when_some_sample_has_it(synthia_root, gta_root, tmp_path, capsys):
    from selfpanoptic.intermediates import DatasetCache

    save_grey16(synthia_root / "Depth" / "0000000.png", np.array([[0, 100, 200, 400]] * 2))  # 0000001: none
    synthia = _index(synthia_root, "synthia", "synthia", tmp_path / "synthia.csv", capsys)
    gta = _index(gta_root, "gta", "gta5", tmp_path / "gta.csv", capsys)

    for preload_mb in (1024, 0):  # in memory and read per image
        with DatasetCache.open(_cache(synthia, tmp_path / "s.h5", capsys), preload_mb=preload_mb) as cache:
            assert cache.has_depth and cache["inverse_depth"].dtype == np.float32
            np.testing.assert_allclose(cache.read("inverse_depth", 0)[1], [np.nan, 1.0, 0.5, 0.25])
            assert np.isnan(cache.read("inverse_depth", 1)).all()

        with DatasetCache.open(_cache(gta, tmp_path / "g.h5", capsys), preload_mb=preload_mb) as cache:
            assert not cache.has_depth and "inverse_depth" not in cache
            assert cache.read("labels", 0).shape == (2, 4)

    mixed = tmp_path / "mixed.csv"
    frames = [pd.read_csv(p, keep_default_na=False, dtype={"image_id": str}) for p in (synthia, gta)]
    pd.concat(frames, ignore_index=True).to_csv(mixed, index=False)
    with DatasetCache.open(_cache(mixed, tmp_path / "m.h5", capsys)) as cache:
        assert cache.has_depth and cache.datasets == ["synthia", "synthia", "gta"]
        assert np.isfinite(cache.read("inverse_depth", 0)).sum() == 6
        assert np.isnan(cache.read("inverse_depth", 2)).all()
