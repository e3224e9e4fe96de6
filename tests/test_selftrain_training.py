"""Self-training rounds on tiny caches: exact resume after SIGKILL (teacher and prior included),
guidance by ground-truth instances, instance self-training of a group."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from selfpanoptic.config import validate_config
from selfpanoptic.pseudo_labels import export_semantic_pseudo_labels
from selfpanoptic.train.instance import train_instance
from selfpanoptic.train.self_instance import self_train_instance
from selfpanoptic.train.self_semantic import self_train_semantic
from selfpanoptic.train.semantic import train_semantic
from test_training import tiny_cache

BIN = Path(sys.executable).parent
TINY_TRAIN = {"steps": 2, "batch_size": 2, "crop": [32, 64], "checkpoint_every": 100}


@pytest.fixture(scope="module")
def round0(tmp_path_factory) -> dict[str, Path]:
    """A tiny cache and round-0 models trained on it for two steps."""
    root = tmp_path_factory.mktemp("round0")
    cache = tiny_cache(root / "cache.h5")
    config = validate_config({
        "semantic": {"train": TINY_TRAIN},
        "instance": {"train": TINY_TRAIN, "groups": {"vehicles": ["car"]}},
    })
    train_semantic(cache, root / "semantic.pt", root / "sem-work", config["semantic"], "cpu", progress=False)
    train_instance(cache, root / "instance.pt", root / "inst-work", config["instance"], "vehicles", "cpu", progress=False)
    return {"cache": cache, "semantic": root / "semantic.pt", "instance": root / "instance.pt"}


def selftrain_settings(**semantic) -> dict:
    settings = validate_config({"selftrain": {"semantic": {
        "train": {"steps": 12, "batch_size": 2, "crop": [32, 64], "checkpoint_every": 3},
        "source_batch_size": 1, "momentum_every": 2, "momentum": 0.5, **semantic,
    }}})["selftrain"]
    settings.pop("rounds")
    return settings


def _selftrain(round0: dict, out: Path, work: Path, settings: dict) -> subprocess.Popen:
    return subprocess.Popen(
        [str(BIN / "selfpanoptic"), "selftrain-semantic", "--model", str(round0["semantic"]), "--data", str(round0["cache"]),
         "--source", str(round0["cache"]), "--round", "1", "--out", str(out), "--work-dir", str(work),
         "--settings", json.dumps(settings), "--device", "cpu", "--threads", "1", "--quiet"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


def test_killed_selftraining_resumes_with_its_teacher_and_prior_and_matches(round0, tmp_path):
    settings = selftrain_settings()
    reference = _selftrain(round0, tmp_path / "ref.pt", tmp_path / "ref-work", settings)
    assert reference.wait(timeout=300) == 0, reference.stdout.read()

    work = tmp_path / "work"
    proc = _selftrain(round0, tmp_path / "model.pt", work, settings)
    deadline = time.time() + 300
    while not (work / "checkpoint.pt").exists():
        assert proc.poll() is None and time.time() < deadline, "training ended before its first checkpoint"
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    rerun = _selftrain(round0, tmp_path / "model.pt", work, settings)
    output = rerun.communicate(timeout=300)[0]
    assert rerun.returncode == 0, output
    assert 0 < int(output.split("resuming from the checkpoint at step ")[1].split()[0]) < 12

    ref = torch.load(tmp_path / "ref.pt", weights_only=True)
    got = torch.load(tmp_path / "model.pt", weights_only=True)
    # the teacher moved every 2 steps and shaped the pseudo-labels: equal weights need it restored
    for key in ref["state_dict"]:
        assert torch.equal(ref["state_dict"][key], got["state_dict"][key]), key
    assert torch.equal(ref["prior"], got["prior"])
    assert got["round"] == 1 and got["kind"] == "semantic"


def test_selftraining_changes_the_model_and_logs_target_and_source_losses(round0, tmp_path):
    settings = selftrain_settings(train={"steps": 3, "batch_size": 2, "crop": [32, 64]})
    self_train_semantic(round0["semantic"], round0["cache"], round0["cache"], tmp_path / "r1.pt", tmp_path / "work",
                        settings, 1, device="cpu", progress=False)
    before = torch.load(round0["semantic"], weights_only=True)["state_dict"]
    after = torch.load(tmp_path / "r1.pt", weights_only=True)["state_dict"]
    assert any(not torch.equal(before[k], after[k]) for k in before if before[k].is_floating_point())
    header = (tmp_path / "work" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"target", "kept", "source"} <= set(header)


def test_ground_truth_guidance_refines_the_exported_pseudo_labels(round0, tmp_path):
    settings = selftrain_settings()
    settings["guidance"] = {"from_round": 2, "gt_instance_fraction": 1.0}
    out = tmp_path / "pseudo.h5"
    export_semantic_pseudo_labels(round0["semantic"], round0["cache"], out, settings, 1, device="cpu", progress=False)
    with h5py.File(out) as h5:
        assert h5.attrs["guidance"] == "ground_truth"
        labels, before = h5["labels"][()], h5["labels_before_guidance"][()]
        prior = h5["prior"][()]
    # every image's one ground-truth car (rows/cols 10..19) carries a single class after refinement
    car = labels[:, 10:20, 10:20].reshape(len(labels), -1)
    assert all(len(np.unique(patch)) == 1 for patch in car)
    assert (labels[:, :, 25:] == before[:, :, 25:]).all()  # outside the instance: untouched
    assert prior.shape == (19,) and prior.sum() == pytest.approx(1.0, abs=1e-4)


def test_predicted_guidance_needs_the_previous_rounds_instances(round0, tmp_path):
    from selfpanoptic.errors import InputError

    settings = selftrain_settings()
    with pytest.raises(InputError, match="previous round's instances"):
        export_semantic_pseudo_labels(round0["semantic"], round0["cache"], tmp_path / "p.h5", settings, 2, device="cpu", progress=False)
    assert not (tmp_path / "p.h5").exists()


def test_instance_selftraining_keeps_the_group_and_rejects_another(round0, tmp_path):
    from selfpanoptic.errors import InputError
    from selfpanoptic.predict import predict_semantic

    semantic = tmp_path / "semantic.h5"
    predict_semantic(round0["semantic"], round0["cache"], semantic, "cpu", progress=False)
    config = validate_config({"selftrain": {"instance": {
        "train": {"steps": 2, "batch_size": 4, "crop": [32, 64]}, "min_size": 4, "min_confidence": 0.0,
    }}})
    args = (round0["instance"], round0["cache"], semantic, round0["cache"], tmp_path / "r1.pt", tmp_path / "work",
            config["selftrain"]["instance"], config["instance"]["loss"])
    self_train_instance(*args, "vehicles", 1, device="cpu", progress=False)
    saved = torch.load(tmp_path / "r1.pt", weights_only=True)
    assert saved["group"] == "vehicles" and saved["classes"] == ["car"] and saved["round"] == 1
    header = (tmp_path / "work" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"spoco", "consistency", "pseudo_per_image"} <= set(header)
    with pytest.raises(InputError, match="not 'people'"):
        self_train_instance(*args, "people", 1, device="cpu", progress=False)
