"""The training engine: schedules, non-finite losses, and exact resume after SIGKILL."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from selfpanoptic.config import validate_config
from selfpanoptic.h5io import atomic_h5, create_stack, write_strings
from selfpanoptic.settings import TrainSettings
from selfpanoptic.train.engine import NonFiniteLossError, TrainResult, rate_text, train
from selfpanoptic.train.optim import learning_rate_factor

BIN = Path(sys.executable).parent


def tiny_cache(path: Path, count: int = 6, height: int = 32, width: int = 64) -> Path:
    rng = np.random.default_rng(0)
    with atomic_h5(path, "dataset_cache", {"height": height, "width": width}) as h5:
        create_stack(h5, "images", count, (height, width, 3), np.uint8)[:] = rng.integers(0, 256, (count, height, width, 3))
        labels = np.zeros((count, height, width), dtype=np.uint8)
        labels[:, height // 2 :] = 0       # road below
        labels[:, : height // 2] = 10      # sky above
        labels[:, 10:20, 10:20] = 13       # a car
        instances = np.zeros((count, height, width), dtype=np.int32)
        instances[:, 10:20, 10:20] = 1
        create_stack(h5, "labels", count, (height, width), np.uint8)[:] = labels
        create_stack(h5, "instances", count, (height, width), np.int32)[:] = instances
        write_strings(h5, "image_ids", [f"img{i}" for i in range(count)])
        write_strings(h5, "datasets", ["synthia"] * count)
    return path


def test_learning_rate_schedules():
    assert learning_rate_factor("constant", 5, 10) == 1.0
    assert learning_rate_factor("poly", 0, 10) == 1.0
    assert learning_rate_factor("poly", 5, 10, power=1.0) == pytest.approx(0.5)
    assert learning_rate_factor("cosine", 5, 10) == pytest.approx(0.5)
    assert learning_rate_factor("cosine", 10, 10) == pytest.approx(0.0)



def test_slow_throughput_is_logged_with_its_significant_digits():
    """A real-resolution step on a CPU takes seconds: 0.0123 images/s must not print as 0.0."""
    assert [rate_text(v) for v in (0.0123, 0.04, 1.5, 12.345, 1234.56)] == ["0.0123", "0.04", "1.5", "12.3", "1234.6"]
    assert "(0.0123 images/s)" in TrainResult(3, 0, 240.0, 0.0123).summary()


def test_non_finite_loss_stops_with_the_step(tmp_path):
    model = torch.nn.Linear(2, 1)
    settings = validate_config({})["semantic"]["train"] | {"steps": 5}

    def step(net, rng, index):
        loss = net(torch.ones(1, 2)).sum() * (math.inf if index == 3 else 1.0)
        return loss, {}, 1

    with pytest.raises(NonFiniteLossError, match="at step 3"):
        train(model, step, TrainSettings.from_config(settings), tmp_path, "id", torch.device("cpu"), progress=False)


def test_an_overflowing_update_and_infinite_weights_stop_with_a_message(tmp_path):
    """Adam's first step size overflows float32 at lr 1e38; SGD's huge update leaves infinite
    weights after the last step, where no later loss would show them."""
    base = validate_config({})["semantic"]["train"] | {"steps": 1}

    def step(net, rng, index):
        return net(torch.ones(1, 2)).sum() * 1e30, {}, 1

    adam = TrainSettings.from_config(base | {"optimizer": "adam", "lr": 1e38})
    with pytest.raises(NonFiniteLossError, match="the weight update overflowed at step 0"):
        train(torch.nn.Linear(2, 1), step, adam, tmp_path / "a", "id", torch.device("cpu"), progress=False)
    sgd = TrainSettings.from_config(base | {"optimizer": "sgd", "lr": 1e30})
    with pytest.raises(NonFiniteLossError, match=r"after step 1 the weights are NaN or infinite \(weight, bias\)"):
        train(torch.nn.Linear(2, 1), step, sgd, tmp_path / "s", "id", torch.device("cpu"), progress=False)


def _pretrain(cache: Path, out: Path, work: Path, settings: dict) -> subprocess.Popen:
    return subprocess.Popen(
        [str(BIN / "selfpanoptic"), "pretrain-semantic", "--data", str(cache), "--out", str(out),
         "--work-dir", str(work), "--semantic-settings", json.dumps(settings), "--device", "cpu", "--threads", "1", "--quiet"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


def test_sigkilled_training_resumes_and_matches_an_uninterrupted_run(tmp_path):
    cache = tiny_cache(tmp_path / "cache.h5")
    settings = validate_config({"semantic": {"train": {
        "steps": 16, "batch_size": 2, "crop": [32, 64], "checkpoint_every": 4, "optimizer": "adam", "lr": 0.001,
    }}})["semantic"]

    reference = _pretrain(cache, tmp_path / "ref.pt", tmp_path / "ref-work", settings)
    assert reference.wait(timeout=300) == 0, reference.stdout.read()

    work = tmp_path / "work"
    proc = _pretrain(cache, tmp_path / "model.pt", work, settings)
    deadline = time.time() + 300
    while not (work / "checkpoint.pt").exists():  # kill as soon as a checkpoint exists
        assert proc.poll() is None and time.time() < deadline, "training ended before its first checkpoint"
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "model.pt").exists()

    rerun = _pretrain(cache, tmp_path / "model.pt", work, settings)
    output = rerun.communicate(timeout=300)[0]
    assert rerun.returncode == 0, output
    resumed_at = int(output.split("resuming from the checkpoint at step ")[1].split()[0])
    assert 0 < resumed_at < 16
    assert not (work / "checkpoint.pt").exists(), "the checkpoint is removed once the model is written"

    ref = torch.load(tmp_path / "ref.pt", weights_only=True)["state_dict"]
    got = torch.load(tmp_path / "model.pt", weights_only=True)["state_dict"]
    assert ref.keys() == got.keys()
    for key in ref:
        assert torch.equal(ref[key], got[key]), key
    steps_logged = [int(line.split(",")[0]) for line in (work / "metrics.csv").read_text().splitlines()[1:]]
    assert steps_logged[-1] == 16 and steps_logged.count(16) == 1


def test_a_second_trainer_of_one_work_folder_stops_with_a_message(tmp_path):
    import fcntl

    from selfpanoptic.errors import SelfPanopticError

    model = torch.nn.Linear(2, 1)
    settings = validate_config({})["semantic"]["train"] | {"steps": 2}

    def step(net, rng, index):
        return net(torch.ones(1, 2)).sum(), {}, 1

    tmp_path.mkdir(exist_ok=True)
    with open(tmp_path / ".lock", "w") as held:  # an orphaned job of a killed run holds the folder
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(SelfPanopticError, match="another process is training into"):
            train(model, step, TrainSettings.from_config(settings), tmp_path, "id", torch.device("cpu"), progress=False)
    assert train(model, step, TrainSettings.from_config(settings), tmp_path, "id", torch.device("cpu"),
                 progress=False).steps == 2


def test_batches_prepared_by_workers_train_the_same_weights(tmp_path):
    """Worker processes prepare the very batches (and continue the very random stream) of the main process.

    The cache is read per image, so each worker reads through its own reopened HDF5 handle.
    """
    from selfpanoptic.intermediates import DatasetCache
    from selfpanoptic.models import build_semantic_model
    from selfpanoptic.train.semantic import semantic_step

    cache_path = tiny_cache(tmp_path / "cache.h5")
    section = validate_config({"semantic": {"train": {
        "steps": 4, "batch_size": 2, "crop": [24, 48], "jitter": 0.2, "checkpoint_every": 100,
    }}})["semantic"]

    def run(workers: int) -> dict:
        torch.manual_seed(0)
        model = build_semantic_model(section["model"])
        with DatasetCache.open(cache_path, preload_mb=0) as cache:
            step = semantic_step(cache, TrainSettings.from_config(section["train"]), torch.device("cpu"))
            train(model, step, TrainSettings.from_config(section["train"]), tmp_path / f"work{workers}", "id", torch.device("cpu"),
                  progress=False, data_workers=workers)
        return model.state_dict()

    inline, prefetched = run(0), run(2)
    assert inline.keys() == prefetched.keys()
    for key in inline:
        assert torch.equal(inline[key], prefetched[key]), key


def test_prepared_batches_depend_only_on_seed_and_step():
    from selfpanoptic.train.engine import TrainingStep, prepared_batches

    step = TrainingStep(prepare=lambda rng, index: (index, rng.integers(0, 1 << 30)), compute=None)
    inline = [(i, b) for i, b, _ in prepared_batches(step, 7, 3, 9, workers=0, pin_memory=False)]
    resumed = [(i, b) for i, b, _ in prepared_batches(step, 7, 5, 9, workers=2, pin_memory=False)]
    assert [i for i, _ in inline] == list(range(3, 9))
    assert resumed == inline[2:]
    # the generator handed back continues the step's stream where prepare left it
    _, _, rng = next(prepared_batches(step, 7, 3, 4, workers=2, pin_memory=False))
    fresh = np.random.default_rng(np.random.SeedSequence([7, 3]))
    fresh.integers(0, 1 << 30)
    assert rng.integers(0, 1 << 30) == fresh.integers(0, 1 << 30)
