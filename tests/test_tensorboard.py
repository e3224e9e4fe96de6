"""Training visibility: TensorBoard scalars, pictures and validation, none of which changes training."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from selfpanoptic.config import validate_config
from selfpanoptic.intermediates import DatasetCache
from selfpanoptic.settings import InstanceLossSettings, TrainSettings
from selfpanoptic.train.engine import train

from test_training import tiny_cache

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
CPU = torch.device("cpu")
OFF = {"tensorboard": False, "log_images_every": 0, "validate_every": 0}


def events(work: Path) -> EventAccumulator:
    return EventAccumulator(str(work / "tensorboard"), size_guidance={"images": 0, "scalars": 0}).Reload()


def steps(acc: EventAccumulator, tag: str, kind: str = "scalars") -> list[int]:
    return [e.step for e in (acc.Scalars(tag) if kind == "scalars" else acc.Images(tag))]


def assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_semantic_run_logs_scalars_pictures_and_validation_and_trains_the_same_weights(tmp_path):
    from selfpanoptic.models import build_semantic_model
    from selfpanoptic.train.semantic import semantic_step
    from selfpanoptic.train.validation import semantic_validation

    cache_path = tiny_cache(tmp_path / "cache.h5")
    train_settings = validate_config({"semantic": {"train": {
        "steps": 6, "batch_size": 2, "crop": [32, 64], "checkpoint_every": 100,
        "log_images_every": 3, "validate_every": 2, "validate_images": 3,
    }}})["semantic"]["train"]

    def run(work: Path, settings: dict) -> dict:
        torch.manual_seed(0)
        model = build_semantic_model(validate_config({})["semantic"]["model"])
        typed = TrainSettings.from_config(settings)
        with DatasetCache.open(cache_path) as cache:
            train(model, semantic_step(cache, typed, CPU), typed, work, "id", CPU,
                  progress=False, validate=semantic_validation(cache, settings["validate_images"], CPU))
        return model.state_dict()

    logged = run(tmp_path / "logged", train_settings)
    acc = events(tmp_path / "logged")
    assert {"loss/total", "loss/ce", "lr", "throughput/images_per_s", "throughput/data_s"} <= set(acc.Tags()["scalars"])
    assert steps(acc, "loss/total") == [1, 2, 3, 4, 5, 6]
    for tag in ("images/input", "images/prediction", "images/label"):
        assert steps(acc, tag, "images") == [3, 6], tag
    picture = acc.Images("images/label")[0]
    assert (picture.width, picture.height) == (2 * 64, 32)  # the batch's 2 crops side by side
    assert steps(acc, "val/mIoU") == [2, 4, 6] and steps(acc, "val/mIoU16") == [2, 4, 6]
    assert all(0 <= e.value <= 100 for e in acc.Scalars("val/mIoU"))

    plain = run(tmp_path / "plain", train_settings | OFF)
    assert not (tmp_path / "plain" / "tensorboard").exists()
    assert_same_weights(logged, plain)


def test_instance_run_logs_embeddings_and_validation_and_trains_the_same_weights(tmp_path):
    from selfpanoptic.classes import class_id
    from selfpanoptic.models import build_instance_model
    from selfpanoptic.train.instance import instance_step
    from selfpanoptic.train.validation import instance_validation

    cache_path = tiny_cache(tmp_path / "cache.h5")
    section = validate_config({"instance": {"train": {
        "steps": 4, "batch_size": 2, "crop": [32, 64], "checkpoint_every": 100,
        "log_images_every": 2, "validate_every": 3, "validate_images": 2,
    }}})["instance"]

    def run(work: Path, settings: dict) -> dict:
        torch.manual_seed(0)
        model = build_instance_model(section["model"])
        with DatasetCache.open(cache_path) as cache:
            loss = InstanceLossSettings.from_config(section["loss"])
            validate = instance_validation(cache, [class_id("car")], loss, settings["validate_images"], CPU)
            typed = TrainSettings.from_config(settings)
            train(model, instance_step(cache, ["car"], typed, loss, CPU), typed, work, "id", CPU, progress=False,
                  validate=validate)
        return model.state_dict()

    logged = run(tmp_path / "logged", section["train"])
    acc = events(tmp_path / "logged")
    assert {"loss/total", "loss/pull", "loss/dice", "lr"} <= set(acc.Tags()["scalars"])
    for tag in ("images/input", "images/embedding", "images/instances"):
        assert steps(acc, tag, "images") == [2, 4], tag
    assert steps(acc, "val/spoco") == [3] and steps(acc, "val/dice") == [3]
    assert_same_weights(logged, run(tmp_path / "plain", section["train"] | OFF))


def test_a_resumed_run_shows_every_step_once_with_the_uninterrupted_values(tmp_path):
    """The killed run's events after its checkpoint are purged; the rerun's replace them."""
    from selfpanoptic.train.visuals import unit_images

    settings = validate_config({})["semantic"]["train"] | {"steps": 6, "checkpoint_every": 2, "log_images_every": 1}

    def run(work: Path, crash_at: int | None = None) -> None:
        torch.manual_seed(0)
        model = torch.nn.Linear(2, 1)

        def step(net, rng, index):
            if index == crash_at:
                raise RuntimeError("killed")
            x = torch.from_numpy(rng.normal(size=(4, 2)).astype(np.float32))
            loss = (net(x) - 1).pow(2).mean()
            return loss, {"mse": loss.detach()}, 4, lambda: {"input": unit_images(torch.rand(1, 3, 2, 2))}

        train(model, step, TrainSettings.from_config(settings), work, "id", CPU, progress=False)

    run(tmp_path / "reference")
    with pytest.raises(RuntimeError, match="killed"):
        run(tmp_path / "work", crash_at=3)  # steps 1..3 logged, the checkpoint at step 2
    with pytest.raises(RuntimeError, match="killed"):
        run(tmp_path / "work", crash_at=5)  # resumed at step 2: steps 3..5 logged again, the checkpoint at 4
    run(tmp_path / "work")  # resumed at step 4
    reference, resumed = events(tmp_path / "reference"), events(tmp_path / "work")
    for tag in ("loss/total", "loss/mse", "lr"):
        assert steps(resumed, tag) == [1, 2, 3, 4, 5, 6], tag
        assert [e.value for e in resumed.Scalars(tag)] == [e.value for e in reference.Scalars(tag)], tag
    assert steps(resumed, "images/input", "images") == [1, 2, 3, 4, 5, 6]


def test_validation_restores_every_modules_mode_and_draws_no_random_number():
    from selfpanoptic.pseudo.teacher import freeze_batchnorm
    from selfpanoptic.train.validation import evaluating

    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Dropout(0.5))
    model.train()
    freeze_batchnorm(model)  # a self-training student: BatchNorm frozen, the rest training
    modes = [m.training for m in model.modules()]
    torch_state, numpy_state = torch.get_rng_state(), np.random.get_state()[1].copy()
    with evaluating(model):
        assert not any(m.training for m in model.modules())
        assert not torch.is_grad_enabled()
        out = model(torch.ones(1, 3, 5, 5))
    assert [m.training for m in model.modules()] == modes
    assert torch.equal(torch.get_rng_state(), torch_state) and np.array_equal(np.random.get_state()[1], numpy_state)
    assert torch.equal(out, model.eval()(torch.ones(1, 3, 5, 5)))  # dropout off, running statistics used


def test_pictures_are_in_the_unit_range_and_at_most_four():
    from selfpanoptic.train.visuals import embedding_images, instance_images, label_images, normalised_images

    labels = torch.full((6, 4, 5), 255)
    labels[:, 0] = 0
    pictures = [label_images(labels), instance_images(torch.arange(6 * 20).reshape(6, 4, 5) % 3),
                embedding_images(torch.randn(6, 8, 4, 5)), normalised_images(torch.randn(6, 3, 4, 5))]
    for picture in pictures:
        assert picture.shape == (4, 3, 4, 5) and picture.min() >= 0 and picture.max() <= 1
    assert torch.equal(pictures[0][0, :, 1], torch.zeros(3, 5))  # ignore is black
    assert torch.allclose(pictures[0][0, :, 0, 0], torch.tensor([128, 64, 128]) / 255)  # road
    assert embedding_images(torch.randn(1, 2, 3, 3)).shape == (1, 3, 3, 3)  # 2-d embeddings: 2 components


def test_workflow_passes_the_val_cache_only_to_training_rules_that_validate(tmp_path):
    smoke = yaml.safe_load((ROOT / "configs" / "smoke.yaml").read_text())
    smoke["semantic"]["train"]["validate_every"] = 2
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(smoke))
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    result = subprocess.run(
        [str(BIN / "snakemake"), "--snakefile", str(ROOT / "Snakefile"), "--directory", str(tmp_path),
         "--configfile", str(config), "-n", "-p", "--forceall"], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    commands = [line.removeprefix("Shell command: ") for line in result.stdout.splitlines()]
    training = [c for c in commands if c.startswith(("selfpanoptic pretrain-", "selfpanoptic selftrain-"))]
    assert len(training) > 4
    for command in training:
        validates = command.startswith("selfpanoptic pretrain-semantic")
        assert ("--val-data results-smoke/data/cache/target_val.h5" in command) == validates, command
