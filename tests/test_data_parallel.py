"""``index`` and ``cache`` in worker processes write what one process writes, and report bad files the same way."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

from selfpanoptic import pngio
from selfpanoptic.cli import main
from selfpanoptic.data.parallel import ordered_map
from selfpanoptic.errors import InputError

from conftest import image_of, save_rgb

TOY = {"height": 32, "width": 64, "synthia_images": 4, "gta_images": 4, "target_train_images": 5,
       "target_val_images": 1}
DATA = json.dumps({"height": 16, "width": 32, "compression": "lzf"})
DOMAINS = {  # name: (format, root, split options)
    "synthia": ("synthia", "synthia", []),
    "gta": ("gta5", "gta", []),
    "target": ("cityscapes", "target", ["--split", "train"]),
}


def index_args(name: str, root: Path, out: Path, threads: int) -> list[str]:
    fmt, folder, split = DOMAINS[name]
    return ["index", "--name", name, "--format", fmt, "--root", str(root / folder), *split, "--out", str(out),
            "--threads", str(threads), "--quiet"]


def cache_args(manifest: Path, out: Path, threads: int) -> list[str]:
    return ["cache", "--data-settings", DATA, "--manifest", str(manifest), "--out", str(out),
            "--threads", str(threads), "--quiet"]


@pytest.fixture(scope="module")
def toy(tmp_path_factory) -> Path:
    """The three toy domains (Synthia with Depth/, GTA5, Cityscapes with disparity/), 32x64."""
    root = tmp_path_factory.mktemp("toy")
    assert main(["synthesize", "--toy-settings", json.dumps(TOY), "--synthia-root", str(root / "synthia"),
                 "--gta-root", str(root / "gta"), "--target-root", str(root / "target"), "--quiet"]) == 0
    return root


@pytest.fixture(scope="module")
def manifests(toy) -> dict[tuple[str, int], Path]:
    """Each domain indexed by 1 and by 2 processes; ``all``: the three in one manifest (as a mixed source is)."""
    out = {}
    for name in DOMAINS:
        for threads in (1, 2):
            out[name, threads] = toy / f"{name}_{threads}.csv"
            assert main(index_args(name, toy, out[name, threads], threads)) == 0
    out["all", 1] = toy / "all.csv"
    frames = [pd.read_csv(out[name, 1], dtype=str, keep_default_na=False) for name in DOMAINS]
    pd.concat(frames).to_csv(out["all", 1], index=False)
    return out


def test_index_writes_the_same_manifest_with_two_workers(manifests):
    for name in DOMAINS:
        assert manifests[name, 2].read_bytes() == manifests[name, 1].read_bytes(), name


def test_cache_holds_the_same_arrays_with_two_workers(manifests, tmp_path):
    paths = {}
    for threads in (1, 2):
        paths[threads] = tmp_path / f"cache_{threads}.h5"
        assert main(cache_args(manifests["all", 1], paths[threads], threads)) == 0
    with h5py.File(paths[1], "r") as one, h5py.File(paths[2], "r") as two:
        assert set(one) == set(two) and "inverse_depth" in one  # synthia and target have depth files
        assert len(set(one["datasets"][()])) == 3
        for key in one:
            assert one[key].dtype == two[key].dtype and one[key].compression == two[key].compression, key
            assert np.array_equal(one[key][()], two[key][()], equal_nan=one[key].dtype.kind == "f"), key
        assert set(one.attrs) == set(two.attrs)
        for key in set(one.attrs) - {"created"}:
            assert np.array_equal(one.attrs[key], two.attrs[key]), key


def copy_of_target(toy: Path, tmp_path: Path) -> Path:
    root = tmp_path / "target"
    shutil.copytree(toy / "target", root)
    return root


def run_both(capsys, make_args) -> list[tuple[int, str, str]]:
    """``main(make_args(threads))`` for 1 and 2 threads: exit code, stdout, stderr of each."""
    outcomes = []
    for threads in (1, 2):
        code = main(make_args(threads))
        captured = capsys.readouterr()
        outcomes.append((code, captured.out, captured.err))
    return outcomes


def test_a_corrupt_image_is_reported_the_same_by_two_workers(toy, tmp_path, capsys):
    root = copy_of_target(toy, tmp_path)
    images = sorted((root / "leftImg8bit" / "train").rglob("*.png"))
    images[1].write_bytes(b"\x89PNG\r\n\x1a\n broken")
    one, two = run_both(capsys, lambda threads: [
        "index", "--name", "target", "--format", "cityscapes", "--root", str(root), "--split", "train",
        "--out", str(tmp_path / f"m{threads}.csv"), "--threads", str(threads), "--quiet"])
    assert one == two
    assert one[0] == 2 and f"{images[1]}: cannot decode image" in one[2] and "Traceback" not in one[2]
    assert not list(tmp_path.glob("m*.csv"))


@pytest.mark.parametrize("damage", ["depth_size", "gone"])
def test_a_bad_file_found_by_a_cache_worker_is_the_same_error(toy, tmp_path, capsys, damage):
    copy_of_target(toy, tmp_path)
    assert main(index_args("target", tmp_path, tmp_path / "m.csv", 1)) == 0
    capsys.readouterr()
    root, image = tmp_path / "target", Path(pd.read_csv(tmp_path / "m.csv")["image_path"][2])
    if damage == "depth_size":  # a DataFileError, whose __init__ pickle cannot call
        disparity = sorted((root / "disparity" / "train").rglob("*.png"))[2]
        pngio.write_png(disparity, np.ones((8, 8), dtype=np.uint16))
    else:
        image.unlink()
    one, two = run_both(capsys, lambda threads: cache_args(tmp_path / "m.csv", tmp_path / f"c{threads}.h5", threads))
    assert one == two
    assert one[0] == 2 and "Traceback" not in one[2]
    expected = {"depth_size": f"depth 8x8 does not match its image {image}",
                "gone": f"image {image.name[:-len('_leftImg8bit.png')]!r} listed in the manifest is no longer"}[damage]
    assert expected in one[2]
    assert not list(tmp_path.glob("c*.h5"))


def test_ordered_map_gives_the_results_in_order_and_the_same_error(tmp_path):
    paths = [tmp_path / f"{i}.png" for i in range(7)]
    for i, path in enumerate(paths):
        save_rgb(path, image_of(2 + i, 3, seed=i))
    paths[5] = tmp_path / "missing.png"
    outcomes = []
    for workers in (1, 2):
        got = []
        with pytest.raises(InputError) as error, ordered_map(pngio.read_rgb, paths, workers, chunksize=2) as results:
            got.extend(results)
        outcomes.append((got, error.value))
    (one, error_one), (two, error_two) = outcomes
    assert len(one) == len(two) == 5 and all(np.array_equal(a, b) for a, b in zip(one, two))
    assert [a.shape[0] for a in two] == [2, 3, 4, 5, 6]  # in order
    assert type(error_one) is type(error_two) and str(error_one) == str(error_two)
    assert vars(error_one) == vars(error_two) and error_two.path == paths[5]


def test_a_killed_worker_ends_the_map_with_an_error():
    with pytest.raises(RuntimeError, match="worker process ended abruptly: killed"):
        with ordered_map(os._exit, [3, 3, 3, 3], workers=2, chunksize=1) as results:
            list(results)
