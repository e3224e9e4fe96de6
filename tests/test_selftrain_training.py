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

from selfpanoptic.cli import main
from selfpanoptic.config import validate_config
from conftest import random_cityscapes_split
from test_training import tiny_cache

BIN = Path(sys.executable).parent
TINY_TRAIN = {"steps": 2, "batch_size": 2, "crop": [32, 64], "checkpoint_every": 100}
CPU = ["--device", "cpu", "--threads", "1", "--quiet"]


@pytest.fixture(scope="module")
def round0(tmp_path_factory) -> dict[str, Path]:
    """A tiny cache and round-0 models trained on it for two steps."""
    root = tmp_path_factory.mktemp("round0")
    cache = tiny_cache(root / "cache.h5")
    config = validate_config({
        "semantic": {"train": TINY_TRAIN},
        "instance": {"train": TINY_TRAIN, "groups": {"vehicles": ["car"]}},
    })
    assert main(["pretrain-semantic", "--data", str(cache), "--out", str(root / "semantic.pt"), "--work-dir",
                 str(root / "sem-work"), "--semantic-settings", json.dumps(config["semantic"]), *CPU]) == 0
    assert main(["pretrain-instance", "--data", str(cache), "--out", str(root / "instance.pt"), "--work-dir",
                 str(root / "inst-work"), "--instance-settings", json.dumps(config["instance"]), "--group", "vehicles",
                 *CPU]) == 0
    return {"cache": cache, "semantic": root / "semantic.pt", "instance": root / "instance.pt"}


def selftrain_settings(**semantic) -> dict:
    settings = validate_config({"selftrain": {"semantic": {
        "train": {"steps": 6, "batch_size": 2, "crop": [32, 64], "checkpoint_every": 2},
        "source_batch_size": 1, "momentum_every": 2, "momentum": 0.5, **semantic,
    }}})["selftrain"]
    settings.pop("rounds")
    return settings


def pseudo_semantic(round0: dict, out: Path, settings: dict, round_index: int) -> int:
    return main(["pseudo-semantic", "--model", str(round0["semantic"]), "--data", str(round0["cache"]), "--out", str(out),
                 "--source", str(round0["cache"]), "--round", str(round_index), "--selftrain-settings", json.dumps(settings), *CPU])


def _selftrain(round0: dict, out: Path, work: Path, settings: dict) -> subprocess.Popen:
    return subprocess.Popen(
        [str(BIN / "selfpanoptic"), "selftrain-semantic", "--model", str(round0["semantic"]), "--data", str(round0["cache"]),
         "--source", str(round0["cache"]), "--round", "1", "--out", str(out), "--work-dir", str(work),
         "--selftrain-settings", json.dumps(settings), *CPU],
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
    assert 0 < int(output.split("resuming from the checkpoint at step ")[1].split()[0]) < 6

    ref = torch.load(tmp_path / "ref.pt", weights_only=True)
    got = torch.load(tmp_path / "model.pt", weights_only=True)
    # the teacher moved every 2 steps and shaped the pseudo-labels: equal weights need it restored
    for key in ref["state_dict"]:
        assert torch.equal(ref["state_dict"][key], got["state_dict"][key]), key
    assert torch.equal(ref["prior"], got["prior"])
    assert got["round"] == 1 and got["kind"] == "semantic"


def test_selftraining_changes_the_model_and_logs_target_and_source_losses(round0, tmp_path):
    settings = selftrain_settings(train={"steps": 3, "batch_size": 2, "crop": [32, 64]})
    assert main(["selftrain-semantic", "--model", str(round0["semantic"]), "--data", str(round0["cache"]),
                 "--source", str(round0["cache"]), "--round", "1", "--out", str(tmp_path / "r1.pt"),
                 "--work-dir", str(tmp_path / "work"), "--selftrain-settings", json.dumps(settings), *CPU]) == 0
    before = torch.load(round0["semantic"], weights_only=True)["state_dict"]
    after = torch.load(tmp_path / "r1.pt", weights_only=True)["state_dict"]
    assert any(not torch.equal(before[k], after[k]) for k in before if before[k].is_floating_point())
    header = (tmp_path / "work" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"target", "kept", "source"} <= set(header)


def tensorboard_tags(work: Path) -> dict[str, list[int]]:
    """Every scalar and image tag of a training work folder's TensorBoard events, with its steps."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(work / "tensorboard"), size_guidance={"images": 0, "scalars": 0}).Reload()
    tags = {tag: [e.step for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}
    return tags | {tag: [e.step for e in acc.Images(tag)] for tag in acc.Tags()["images"]}


def test_selftraining_with_pictures_and_validation_trains_the_same_weights(round0, tmp_path):
    """Validation runs the student in eval mode between steps; its frozen BatchNorm and the teacher stay as they were."""
    weights = {}
    for name, logging in (("logged", {"log_images_every": 2, "validate_every": 2, "validate_images": 4}),
                          ("plain", {"tensorboard": False, "log_images_every": 0})):
        settings = selftrain_settings(train={"steps": 4, "batch_size": 2, "crop": [32, 64], **logging})
        assert main(["selftrain-semantic", "--model", str(round0["semantic"]), "--data", str(round0["cache"]),
                     "--source", str(round0["cache"]), "--round", "1", "--out", str(tmp_path / f"{name}.pt"),
                     "--work-dir", str(tmp_path / name), "--val-data", str(round0["cache"]),
                     "--selftrain-settings", json.dumps(settings), *CPU]) == 0
        weights[name] = torch.load(tmp_path / f"{name}.pt", weights_only=True)["state_dict"]
    tags = tensorboard_tags(tmp_path / "logged")
    assert tags["pseudo/kept"] == [1, 2, 3, 4] and tags["loss/target"] == [1, 2, 3, 4]
    assert tags["images/pseudo_label"] == tags["images/prediction"] == tags["images/input"] == [2, 4]
    assert tags["val/mIoU"] == [2, 4]
    assert not (tmp_path / "plain" / "tensorboard").exists()
    for key, value in weights["logged"].items():
        assert torch.equal(value, weights["plain"][key]), key


def test_ground_truth_guidance_refines_the_exported_pseudo_labels(round0, tmp_path):
    settings = selftrain_settings()
    # the thesis' refinement: every instance, filling its ignored pixels too
    settings["guidance"] = {"from_round": 2, "gt_instance_fraction": 1.0, "min_kept_share": 0.0, "min_agreement": 0.0,
                            "fill_ignored": True}
    out = tmp_path / "pseudo.h5"
    assert pseudo_semantic(round0, out, settings, 1) == 0
    with h5py.File(out) as h5:
        assert h5.attrs["guidance"] == "ground_truth"
        labels, before = h5["labels"][()], h5["labels_before_guidance"][()]
        prior = h5["prior"][()]
    # every image's one ground-truth car (rows/cols 10..19) carries a single class after refinement
    car = labels[:, 10:20, 10:20].reshape(len(labels), -1)
    assert all(len(np.unique(patch)) == 1 for patch in car)
    assert (labels[:, :, 25:] == before[:, :, 25:]).all()  # outside the instance: untouched
    assert prior.shape == (19,) and prior.sum() == pytest.approx(1.0, abs=1e-4)


def test_predicted_guidance_needs_the_previous_rounds_instances(round0, tmp_path, capsys):
    assert pseudo_semantic(round0, tmp_path / "p.h5", selftrain_settings(), 2) == 2
    assert "previous round's instances" in capsys.readouterr().err
    assert not (tmp_path / "p.h5").exists()


def test_exported_pseudo_labels_are_what_the_training_step_makes(round0, tmp_path):
    """The file is make_pseudo_labels of the round-start teacher on whole images: recompute one."""
    from selfpanoptic.augment.views import random_view_affines
    from selfpanoptic.intermediates import DatasetCache, SemanticPseudoLabels
    from selfpanoptic.models import model_from_file
    from selfpanoptic.pseudo.semantic import make_pseudo_labels
    from selfpanoptic.settings import PseudoLabelSettings
    from selfpanoptic.augment.normalise import to_unit
    from selfpanoptic.stages._guidance import source_shares

    settings = selftrain_settings(threshold_floor=0.0)  # the 2-step model is never confident enough for 0.2
    out = tmp_path / "pseudo.h5"
    assert pseudo_semantic(round0, out, settings, 1) == 0
    sem, seed, i = settings["semantic"], settings["semantic"]["train"]["seed"], 1
    teacher = model_from_file(round0["semantic"])
    with DatasetCache.open(round0["cache"]) as cache, SemanticPseudoLabels.open(out, cache.image_ids) as pseudo:
        affines = random_view_affines(1, sem["views"], np.random.default_rng([seed, i]), sem["min_scale"],
                                      sem["max_scale"], sem["flip_p"])
        reference = source_shares(sem["alignment"], str(round0["cache"]))
        assert reference is not None  # the default alignment lifts classes towards these shares
        made = make_pseudo_labels(teacher, to_unit(cache.read("images", i)[None]), affines, pseudo.prior,
                                  PseudoLabelSettings.from_config(sem), reference=reference)
        assert (made.labels[0].numpy() == pseudo["labels"][i]).all()
        assert (made.argmax[0].numpy() == pseudo["argmax"][i]).all()
        assert np.allclose(made.thresholds[0].numpy(), pseudo["thresholds"][i])
        assert (pseudo["labels"][i] != 255).any() and (pseudo["labels"][i] == 255).any()


def test_pseudo_instance_file_is_its_own_kind(round0, tmp_path, capsys):
    semantic, out = tmp_path / "semantic.h5", tmp_path / "pseudo_instances.h5"
    assert main(["predict-semantic", "--model", str(round0["semantic"]), "--data", str(round0["cache"]),
                 "--out", str(semantic), *CPU]) == 0
    config = validate_config({"selftrain": {"instance": {"min_size": 4, "min_confidence": 0.0}},
                              "instance": {"groups": {"vehicles": ["car"]}}})
    assert main(["pseudo-instance", "--models", str(round0["instance"]), "--semantic", str(semantic),
                 "--data", str(round0["cache"]), "--source", str(round0["cache"]), "--out", str(out),
                 "--instance-settings", json.dumps(config["instance"]),
                 "--selftrain-settings", json.dumps({"instance": config["selftrain"]["instance"]}), *CPU]) == 0
    with h5py.File(out) as h5:
        assert h5.attrs["stage"] == "instance_pseudo_labels"
        assert json.loads(h5.attrs["config"])["pseudo"]["min_size"] == 4
    # a pseudo-label file is not an instance prediction: the evaluator refuses it by name
    random_cityscapes_split(tmp_path / "cityscapes", "val", 1, 32, 64)
    manifest = tmp_path / "val.csv"
    assert main(["index", "--name", "target", "--format", "cityscapes", "--root", str(tmp_path / "cityscapes"),
                 "--split", "val", "--out", str(manifest), "--quiet"]) == 0
    assert main(["score-instance", "--prediction", str(out), "--ground-truth", str(manifest), "--run", "round1",
                 "--out", str(tmp_path / "e.csv"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "pseudo_instances.h5" in err and "'instance_pseudo_labels'" in err and "'instance_prediction'" in err


def test_prediction_stages_take_the_inference_settings(round0, tmp_path):
    """Sliding windows, two scales and flips: files at the cache's size, the settings recorded."""
    inference = json.dumps({"mode": "slide", "crop": [16, 32], "stride": [12, 20], "scales": [1.0, 1.5], "flip": True})
    semantic, instances = tmp_path / "semantic.h5", tmp_path / "instances.h5"
    assert main(["predict-semantic", "--model", str(round0["semantic"]), "--data", str(round0["cache"]),
                 "--out", str(semantic), "--inference-settings", inference, *CPU]) == 0
    config = validate_config({"instance": {"groups": {"vehicles": ["car"]}}})
    assert main(["predict-instance", "--models", str(round0["instance"]), "--semantic", str(semantic),
                 "--data", str(round0["cache"]), "--out", str(instances), "--instance-settings",
                 json.dumps(config["instance"]), "--inference-settings", inference, *CPU]) == 0
    for path in (semantic, instances):
        with h5py.File(path) as h5:
            assert json.loads(h5.attrs["config"])["inference"]["scales"] == [1.0, 1.5]
            stack = h5["labels" if path == semantic else "instances"]
            assert stack.shape == (6, 32, 64)


def test_instance_selftraining_keeps_the_group_and_rejects_another(round0, tmp_path, capsys):
    semantic = tmp_path / "semantic.h5"
    assert main(["predict-semantic", "--model", str(round0["semantic"]), "--data", str(round0["cache"]),
                 "--out", str(semantic), *CPU]) == 0
    config = validate_config({"selftrain": {"instance": {
        "train": {"steps": 2, "batch_size": 4, "crop": [32, 64]}, "min_size": 4, "min_confidence": 0.0,
    }}})

    def args(name: str, instance: dict) -> list[str]:
        return ["selftrain-instance", "--model", str(round0["instance"]), "--data", str(round0["cache"]),
                "--semantic", str(semantic), "--source", str(round0["cache"]), "--out", str(tmp_path / f"{name}.pt"),
                "--work-dir", str(tmp_path / name), "--round", "1", *CPU, "--val-data", str(round0["cache"]),
                "--selftrain-settings", json.dumps({"instance": instance}),
                "--instance-settings", json.dumps(config["instance"])]

    instance = config["selftrain"]["instance"]
    assert main([*args("r1", instance), "--group", "vehicles"]) == 0
    saved = torch.load(tmp_path / "r1.pt", weights_only=True)
    assert saved["group"] == "vehicles" and saved["classes"] == ["car"] and saved["round"] == 1
    header = (tmp_path / "r1" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"spoco", "consistency", "pseudo_per_image"} <= set(header)
    # pictures and validation on: the same weights, and the target crops' pseudo instances shown
    logged = instance | {"train": instance["train"] | {"log_images_every": 1, "validate_every": 2}}
    assert main([*args("logged", logged), "--group", "vehicles"]) == 0
    tags = tensorboard_tags(tmp_path / "logged")
    assert tags["pseudo/instances_per_image"] == [1, 2] and tags["val/spoco"] == [2]
    for tag in ("input", "embedding", "instances", "semantic"):
        assert tags[f"images/{tag}"] == [1, 2], tag
    for key, value in torch.load(tmp_path / "logged.pt", weights_only=True)["state_dict"].items():
        assert torch.equal(value, saved["state_dict"][key]), key
    assert main([*args("r1", instance), "--group", "people"]) == 2
    assert "not 'people'" in capsys.readouterr().err
