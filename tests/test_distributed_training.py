"""Data-parallel training (``--processes 2``, gloo on the CPU) against one process on the same
global batch: pretraining and self-training reach the same weights, teacher-driven pseudo-labels
and class prior; a killed job resumes bit-identically; a user error is printed once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from selfpanoptic.cli import main
from selfpanoptic.config import validate_config
from selfpanoptic.h5io import atomic_h5, create_stack, write_strings
from selfpanoptic.pseudo.thresholds import initial_prior

BIN = Path(sys.executable).parent
CPU = ["--device", "cpu", "--threads", "1", "--quiet"]
# SGD: Adam divides each gradient by its own size, so it turns float rounding in gradients that are
# nearly zero into whole steps (one process with 1 and with 2 threads differs as much; docs/scaling.md)
PRETRAIN = {"steps": 3, "batch_size": 4, "crop": [32, 64], "checkpoint_every": 2, "optimizer": "sgd", "lr": 0.05}
SELFTRAIN = {"steps": 4, "batch_size": 2, "crop": [32, 64], "checkpoint_every": 2, "optimizer": "sgd", "lr": 0.05}


def labelled_cache(path: Path, count: int = 8, height: int = 32, width: int = 64) -> Path:
    """Random images whose labels leave a different share of pixels ignored in each image, so
    that a mean over the labelled pixels of one rank's slice is not that of the whole batch."""
    rng = np.random.default_rng(0)
    with atomic_h5(path, "dataset_cache", {"height": height, "width": width}) as h5:
        create_stack(h5, "images", count, (height, width, 3), np.uint8)[:] = rng.integers(0, 256, (count, height, width, 3))
        labels = rng.choice(np.array([0, 10, 13], np.uint8), size=(count, height, width), p=[0.5, 0.35, 0.15])
        for i in range(count):
            labels[i, : 2 * i] = 255
        create_stack(h5, "labels", count, (height, width), np.uint8)[:] = labels
        create_stack(h5, "instances", count, (height, width), np.int32)[:] = (labels == 13).astype(np.int32)
        write_strings(h5, "image_ids", [f"img{i}" for i in range(count)])
        write_strings(h5, "datasets", ["synthia"] * count)
    return path


def _largest_difference(a: dict, b: dict, running: bool = False) -> float:
    """The largest absolute difference between the weights (``running``: the batch-norm running statistics)."""
    assert a.keys() == b.keys()
    return max((a[k].double() - b[k].double()).abs().max().item() for k in a
               if a[k].is_floating_point() and ("running" in k) == running)


def _pretrain(cache: Path, out: Path, processes: int) -> int:
    settings = validate_config({"semantic": {"train": PRETRAIN}})["semantic"]
    return main(["pretrain-semantic", "--data", str(cache), "--out", str(out), "--work-dir", str(out.parent / "work"),
                 "--semantic-settings", json.dumps(settings), "--processes", str(processes), *CPU])


def _selftrain_command(runs: dict, out: Path, processes: int) -> list[str]:
    settings = validate_config({"selftrain": {"semantic": {
        "train": SELFTRAIN, "source_batch_size": 2, "momentum_every": 2, "momentum": 0.5,
    }}})["selftrain"]
    settings.pop("rounds")
    return ["selftrain-semantic", "--model", str(runs["one"]), "--data", str(runs["cache"]), "--source",
            str(runs["cache"]), "--round", "1", "--out", str(out), "--work-dir", str(out.parent / "work"),
            "--selftrain-settings", json.dumps(settings), "--processes", str(processes), *CPU]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """Pretraining and self-training, each in one process and in two."""
    root = tmp_path_factory.mktemp("ranks")
    paths = {"cache": labelled_cache(root / "cache.h5")}
    for name, processes in (("one", 1), ("two", 2)):
        paths[name] = root / f"pretrain-{name}" / "model.pt"
        assert _pretrain(paths["cache"], paths[name], processes) == 0
    for name, processes in (("self_one", 1), ("self_two", 2)):
        paths[name] = root / f"selftrain-{name}" / "model.pt"
        assert main(_selftrain_command(paths, paths[name], processes)) == 0
    return paths


def test_two_processes_pretrain_as_one_process_does(runs):
    one = torch.load(runs["one"], weights_only=True)["state_dict"]
    two = torch.load(runs["two"], weights_only=True)["state_dict"]
    assert _largest_difference(one, two) <= 1e-6
    # one process sums the batch statistics in float32, the ranks in float64: a few float32 steps apart
    assert _largest_difference(one, two, running=True) <= 1e-5
    # rank 0 alone wrote the log: one row per step, the loss of the global batch
    logs = [(path.parent / "work" / "metrics.csv").read_text().splitlines() for path in (runs["one"], runs["two"])]
    assert len(logs[1]) == 1 + PRETRAIN["steps"]
    for row_one, row_two in zip(logs[0][1:], logs[1][1:]):
        assert float(row_one.split(",")[1]) == pytest.approx(float(row_two.split(",")[1]), rel=1e-6)
    assert not (runs["two"].parent / "work" / "checkpoint.pt").exists()


def test_two_processes_selftrain_as_one_process_does(runs):
    one = torch.load(runs["self_one"], weights_only=True)
    two = torch.load(runs["self_two"], weights_only=True)
    # the teacher moved twice and made the pseudo-labels of every step: equal students need equal teachers
    assert _largest_difference(one["state_dict"], two["state_dict"]) <= 1e-6
    assert _largest_difference(one["state_dict"], two["state_dict"], running=True) <= 1e-6  # frozen (the default)
    assert (one["prior"] - two["prior"]).abs().max().item() <= 1e-6
    # and both moved: the comparison is not between models training left alone
    start = torch.load(runs["one"], weights_only=True)["state_dict"]
    assert _largest_difference(start, one["state_dict"]) > 1e-3
    assert not torch.allclose(one["prior"], initial_prior(len(one["prior"])))


def test_killed_two_process_job_resumes_bit_identically(runs, tmp_path):
    out = tmp_path / "model.pt"
    command = [str(BIN / "selfpanoptic"), *_selftrain_command(runs, out, 2)]
    job = subprocess.Popen(command, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 300
    while not (tmp_path / "work" / "checkpoint.pt").exists():
        assert job.poll() is None and time.time() < deadline, "training ended before its first checkpoint"
        time.sleep(0.005)
    os.killpg(job.pid, signal.SIGKILL)  # the launcher and both ranks, as a scheduler kills a job
    job.wait()
    rerun = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert "resuming from the checkpoint at step 2" in rerun.stdout
    reference = torch.load(runs["self_two"], weights_only=True)
    got = torch.load(out, weights_only=True)
    for key, value in reference["state_dict"].items():
        assert torch.equal(value, got["state_dict"][key]), key
    assert torch.equal(reference["prior"], got["prior"])


def test_a_batch_that_cannot_be_split_is_one_message(runs, tmp_path):
    settings = validate_config({"semantic": {"train": {**PRETRAIN, "batch_size": 3}}})["semantic"]
    result = subprocess.run(
        [str(BIN / "selfpanoptic"), "pretrain-semantic", "--data", str(runs["cache"]), "--out", str(tmp_path / "m.pt"),
         "--work-dir", str(tmp_path / "work"), "--semantic-settings", json.dumps(settings), "--processes", "2", *CPU],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert result.stderr.count("error:") == 1, result.stderr
    assert "cannot be split evenly over 2 processes" in result.stderr and "multiple of" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "m.pt").exists()
