"""Atomic outputs, provenance, and the audit of an HDF5 intermediate."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import h5py
import numpy as np
import pytest

from selfpanoptic.atomic import atomic_output, atomic_write_text
from selfpanoptic.audit import audit_lines
from selfpanoptic.errors import InputError
from selfpanoptic.h5io import atomic_h5, config_hash, create_stack, open_intermediate, provenance, write_strings


def write_example(path, labels, instances):
    with atomic_h5(path, "example", {"b": 2, "a": 1}, inputs=["in.csv"]) as h5:
        create_stack(h5, "labels", len(labels), labels.shape[1:], np.uint8)[:] = labels
        create_stack(h5, "instances", len(labels), labels.shape[1:], np.int32)[:] = instances
        write_strings(h5, "datasets", ["synthia"] * len(labels))


def test_config_hash_ignores_key_order():
    assert config_hash({"a": 1, "b": [1, 2]}) == config_hash({"b": [1, 2], "a": 1})
    assert config_hash({"a": 1}) != config_hash({"a": 2})


def test_atomic_h5_records_provenance_and_chunks_per_image(tmp_path):
    path = tmp_path / "x.h5"
    labels = np.zeros((3, 4, 5), dtype=np.uint8)
    write_example(path, labels, labels.astype(np.int32))
    with open_intermediate(path) as h5:
        info = provenance(h5)
        assert info["stage"] == "example" and info["config"] == {"a": 1, "b": 2}
        assert info["inputs"] == ["in.csv"] and info["complete"] is True
        assert h5["labels"].chunks == (1, 4, 5) and h5["labels"].compression == "gzip"
    assert [p.name for p in tmp_path.iterdir()] == ["x.h5"]


def test_failed_writer_leaves_previous_file_untouched(tmp_path):
    path = tmp_path / "x.h5"
    atomic_write_text(tmp_path / "keep.txt", "old")
    with pytest.raises(RuntimeError):
        with atomic_output(tmp_path / "keep.txt") as tmp:
            tmp.write_text("new, half")
            raise RuntimeError("crash")
    assert (tmp_path / "keep.txt").read_text() == "old"
    with pytest.raises(RuntimeError):
        with atomic_h5(path, "example", {}) as h5:
            h5.create_dataset("x", data=np.arange(3))
            raise RuntimeError("crash")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]


def test_sigkill_during_write_leaves_no_complete_looking_file(tmp_path):
    path = tmp_path / "killed.h5"
    script = textwrap.dedent(f"""
        import time, numpy as np
        from selfpanoptic.h5io import atomic_h5
        with atomic_h5({str(path)!r}, "example", {{}}) as h5:
            h5.create_dataset("x", data=np.arange(10))
            h5.flush()
            print("writing", flush=True)
            time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not path.exists()
    leftovers = list(tmp_path.iterdir())
    assert len(leftovers) == 1 and ".tmp-" in leftovers[0].name
    with pytest.raises(InputError, match="not completely written"):
        open_intermediate(leftovers[0])


def test_audit_explains_histograms_and_instances(tmp_path):
    path = tmp_path / "cache.h5"
    labels = np.array([[[0, 0, 13, 13], [255, 255, 11, 11]], [[10, 10, 10, 10], [0, 0, 0, 0]]], dtype=np.uint8)
    instances = np.array([[[0, 0, 1, 1], [5, 5, 2, 2]], [[0] * 4, [0] * 4]], dtype=np.int32)
    write_example(path, labels, instances)
    text = "\n".join(audit_lines(path))
    assert "stage: example" in text and '"a": 1' in text and "in.csv" in text
    assert "labels" in text and "(2, 2, 4)" in text and "gzip" in text
    road = next(line for line in text.splitlines() if line.strip().startswith("road "))
    assert road.split()[-2:] == ["37.500", "2"]  # 6 of 16 pixels, in both images
    car = next(line for line in text.splitlines() if line.strip().startswith("car ") and len(line.split()) == 2)
    assert car.split() == ["car", "1"]
    assert "1 of 2 images have any" in text
    assert "images per source dataset: synthia: 2" in text
    assert "classes absent:" in text and "truck" in text


def test_open_intermediate_rejects_non_hdf5(tmp_path):
    path = tmp_path / "fake.h5"
    path.write_text("not hdf5")
    with pytest.raises(InputError, match="not a readable HDF5 file"):
        open_intermediate(path)


@pytest.mark.parametrize("compression", ["lzf", "gzip", "none"])
def test_a_cache_of_each_compression_reads_back_identically(tmp_path, compression):
    from selfpanoptic.config import load_schema
    from selfpanoptic.intermediates import DatasetCache

    assert compression in load_schema()["properties"]["data"]["properties"]["compression"]["enum"]
    rng = np.random.default_rng(0)
    # smooth-ish content with noise: compressible, but not to nothing
    images = (np.linspace(0, 200, 3 * 16 * 24).reshape(1, 16, 24, 3) + rng.integers(0, 40, (3, 16, 24, 3))).astype(np.uint8)
    labels = rng.integers(0, 4, (3, 16, 24)).astype(np.uint8) * 5
    instances = np.where(labels == 15, 26000 + rng.integers(0, 3, labels.shape), 0).astype(np.int32)
    depth = rng.random((3, 16, 24), dtype=np.float32)
    depth[1] = np.nan
    path = tmp_path / f"{compression}.h5"
    with DatasetCache.create(path, ["a", "b", "c"], (16, 24), {"compression": compression},
                             compression=compression) as h5:
        h5["images"][:], h5["labels"][:], h5["instances"][:], h5["inverse_depth"][:] = images, labels, instances, depth
    for preload_mb in (0, 1024):  # read per image, and preloaded into memory
        with DatasetCache.open(path, preload_mb=preload_mb) as cache:
            assert cache["images"].compression == (None if compression == "none" else compression)
            for i in range(3):
                assert np.array_equal(cache.read("images", i), images[i])
                assert np.array_equal(cache.read("labels", i), labels[i])
                assert np.array_equal(cache.read("instances", i), instances[i])
                assert np.array_equal(cache.read_inverse_depth(i), depth[i], equal_nan=True)


def test_an_unknown_compression_is_refused(tmp_path):
    with pytest.raises(ValueError, match="lzf"):
        with atomic_h5(tmp_path / "x.h5", "example", {}) as h5:
            create_stack(h5, "labels", 2, (4, 5), np.uint8, compression="zstd")
