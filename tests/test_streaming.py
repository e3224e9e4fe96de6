"""Streaming a split: the per-image views that replace whole-split arrays give bit-identical results.

Each consumer runs once on whole-split arrays read the way the stages read them before
(``h5[name][()]``, a list of every image's instances) and once on per-image views of the open
files (:mod:`selfpanoptic.intermediates.views`), with the same seeds: guidance maps, the
``pseudo-semantic`` file, and the weights after a few steps of both self-training stages (also
with a data-loading worker, which reopens the files after its fork).
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from selfpanoptic.cli import main
from selfpanoptic.config import validate_config
from selfpanoptic.h5io import atomic_h5, create_stack, write_strings
from selfpanoptic.intermediates import (DatasetCache, InstancePrediction, MappedStack, SemanticPrediction, StackView,
                                        lazy_stacks)
from selfpanoptic.pseudo.guidance import sample_instances
import test_selftrain_training
from test_selftrain_training import CPU

round0 = test_selftrain_training.round0  # the fixture: round-0 models trained once for this module

GUIDANCE = {"from_round": 2, "gt_instance_fraction": 0.5, "min_kept_share": 0.0, "min_agreement": 0.0,
            "fill_ignored": True}


def multi_instance_cache(path: Path, count: int = 6, height: int = 32, width: int = 64) -> Path:
    """A dataset cache whose images hold up to five car and person instances each (ids 1..5)."""
    rng = np.random.default_rng(3)
    labels = np.zeros((count, height, width), dtype=np.uint8)
    labels[:, : height // 2] = 10  # sky above, road below
    instances = np.zeros((count, height, width), dtype=np.int32)
    for i in range(count):
        for k in range(1, 6):
            top, left = rng.integers(0, height - 6), rng.integers(0, width - 8)
            labels[i, top : top + 6, left : left + 8] = 13 if k % 2 else 11
            instances[i, top : top + 6, left : left + 8] = k
    with atomic_h5(path, "dataset_cache", {"height": height, "width": width}) as h5:
        images = rng.integers(0, 256, (count, height, width, 3))
        create_stack(h5, "images", count, (height, width, 3), np.uint8)[:] = images
        create_stack(h5, "labels", count, (height, width), np.uint8)[:] = labels
        create_stack(h5, "instances", count, (height, width), np.int32)[:] = instances
        write_strings(h5, "image_ids", [f"img{i}" for i in range(count)])
        write_strings(h5, "datasets", ["synthia"] * count)
    return path


def predictions(cache_path: Path, folder: Path) -> tuple[Path, Path]:
    """A semantic prediction (the cache's labels, random float16 confidence) and an instance
    prediction (the cache's instances, ids doubled) of the cache's images."""
    rng = np.random.default_rng(4)
    with DatasetCache.open(cache_path, preload_mb=0) as cache:
        labels, instances, ids = cache.h5["labels"][()], cache.h5["instances"][()], cache.image_ids
    shape = labels.shape[1:]
    semantic, instance = folder / "semantic.h5", folder / "instances.h5"
    with SemanticPrediction.create(semantic, ids, shape, {}) as h5:
        h5["labels"][:] = labels
        h5["confidence"][:] = rng.uniform(0.5, 1.0, labels.shape).astype(np.float16)
    with InstancePrediction.create(instance, ids, shape, {}) as h5:
        h5["instances"][:] = instances * 2
        rows = [(i, int(k), 13, int((instances[i] * 2 == k).sum())) for i in range(len(ids))
                for k in np.unique(instances[i] * 2) if k]
        InstancePrediction.write_segments(h5, rows, [0.9] * len(rows))
    return semantic, instance


def whole_split_guidance(mode: str, fraction: float, cache: DatasetCache, path, seed: int) -> np.ndarray | None:
    """The guiding instance maps as the stages made them before streaming: whole-split arrays."""
    if mode == "none":
        return None
    if mode == "ground_truth":
        ground_truth = [cache.read("instances", i) for i in range(len(cache))]
        return np.stack([
            sample_instances(ground_truth[i].astype(np.int32), fraction, np.random.default_rng([seed, i]))
            for i in range(len(ground_truth))
        ])
    with InstancePrediction.open(path, cache.image_ids, cache.path) as pred:
        return pred["instances"][()].astype(np.int32)


@pytest.fixture(scope="module")
def split(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("split")
    cache = multi_instance_cache(root / "cache.h5")
    semantic, instance = predictions(cache, root)
    return {"cache": cache, "semantic": semantic, "instances": instance}


# ---------------------------------------------------------------------------------------------
# The views themselves


def test_stack_view_reads_one_image_at_a_time_in_its_dtype(split):
    with SemanticPrediction.open(split["semantic"]) as pred:
        whole = pred["confidence"][()].astype(np.float32)
        view = StackView(pred, "confidence", np.float32)
        assert len(view) == 6 and view.shape == (6, 32, 64) and view.dtype == np.float32
        assert view[2].dtype == np.float32 and view[2].shape == (32, 64)
        assert np.array_equal(view[2], whole[2]) and np.array_equal(view[np.int64(5)], whole[5])
        assert np.array_equal(view[-1], whole[-1])
        assert np.array_equal(view[1:4], whole[1:4]) and np.array_equal(view[::2], whole[::2])
        assert np.array_equal(view[[4, 0, 4]], whole[[4, 0, 4]]) and np.array_equal(view[range(2)], whole[:2])
        assert view[3:3].shape == (0, 32, 64) and view[3:3].dtype == np.float32
        labels = StackView(pred, "labels")  # its own dtype by default
        assert labels.dtype == np.uint8 and labels[0].dtype == np.uint8
        for bad in (6, -7):
            with pytest.raises(IndexError, match="holds 6 images"):
                view[bad]
        with pytest.raises(IndexError):
            view[[0, 6]]
        with pytest.raises(TypeError, match="indexed by an image index"):
            view[1.5]
    with DatasetCache.open(split["cache"]) as cache:  # preloaded: read from memory, the same values
        assert np.array_equal(StackView(cache, "instances")[3], cache.h5["instances"][3])


def test_mapped_stack_applies_its_function_per_image():
    arrays = np.arange(24, dtype=np.int64).reshape(3, 2, 4)
    mapped = MappedStack(arrays, lambda i, a: (a * 10 + i).astype(np.int32), np.int32)
    assert len(mapped) == 3 and mapped.shape == (3, 2, 4)
    assert np.array_equal(mapped[1], arrays[1] * 10 + 1) and mapped[1].dtype == np.int32
    assert np.array_equal(mapped[0:2], np.stack([arrays[0] * 10, arrays[1] * 10 + 1]))
    listed = MappedStack(list(arrays), lambda i, a: a, np.int64)  # a list of per-image arrays, as before
    assert listed.shape == (3, 2, 4) and np.array_equal(listed[2], arrays[2])
    assert lazy_stacks(arrays, None, mapped, listed) == (mapped, listed)


def _read_after_fork(view: StackView, handle_id: int, queue) -> None:
    view.reopen()
    view.reopen()  # once per process: the second call keeps the new handle
    queue.put((id(view.owner.h5) != handle_id, view[1], view[4]))


def test_a_forked_worker_reads_through_its_own_handle(split):
    with SemanticPrediction.open(split["semantic"]) as pred:
        view = StackView(pred, "confidence", np.float32)
        handle = pred.h5
        view.reopen()  # in the process that opened it: nothing to do
        assert pred.h5 is handle
        context = multiprocessing.get_context("fork")
        queue = context.Queue()
        child = context.Process(target=_read_after_fork, args=(view, id(handle), queue))
        child.start()
        own_handle, first, fourth = queue.get(timeout=60)
        child.join(timeout=60)
        assert child.exitcode == 0 and own_handle
        assert np.array_equal(first, view[1]) and np.array_equal(fourth, view[4])


# ---------------------------------------------------------------------------------------------
# Guidance: the maps, and the pseudo-semantic file


@pytest.mark.parametrize("mode", ["ground_truth", "predicted"])
def test_streamed_guidance_maps_equal_the_whole_split_arrays(split, mode):
    from selfpanoptic.stages._guidance import load_guidance

    guidance = GUIDANCE | {"gt_instance_fraction": 0.5 if mode == "ground_truth" else 0.0}
    for preload_mb in (0, 1024):
        with contextlib.ExitStack() as stack:
            cache = stack.enter_context(DatasetCache.open(split["cache"], preload_mb=preload_mb))
            streamed = load_guidance(guidance, 2, cache, str(split["instances"]), 7, stack)
            whole = whole_split_guidance(mode, 0.5, cache, str(split["instances"]), 7)
            assert isinstance(streamed, MappedStack) and len(streamed) == len(whole)
            for i in (3, 0, 5, 3):  # any order, any number of times: the same map
                assert streamed[i].dtype == np.int32 and np.array_equal(streamed[i], whole[i])
            assert np.array_equal(streamed[2:6], whole[2:6])
            if mode == "ground_truth":  # the fraction really dropped instances
                assert (whole != cache.h5["instances"][()]).any()


@pytest.mark.parametrize("mode", ["ground_truth", "predicted"])
def test_pseudo_semantic_file_is_identical_when_guidance_is_streamed(round0, split, tmp_path, monkeypatch, mode):
    import selfpanoptic.stages.pseudo_semantic as stage

    fraction = 0.5 if mode == "ground_truth" else 0.0
    settings = validate_config({"selftrain": {"semantic": {"threshold_floor": 0.0, "alignment": 0.0},
                                              "guidance": GUIDANCE | {"gt_instance_fraction": fraction}}})["selftrain"]
    settings.pop("rounds")

    def run(out: Path) -> dict[str, np.ndarray]:
        assert main(["pseudo-semantic", "--model", str(round0["semantic"]), "--data", str(split["cache"]),
                     "--out", str(out), "--round", "2", "--guidance-instances", str(split["instances"]),
                     "--selftrain-settings", json.dumps(settings), *CPU]) == 0
        with h5py.File(out) as h5:
            assert h5.attrs["guidance"] == mode
            return {name: h5[name][()] for name in h5 if name != "image_ids"}

    streamed = run(tmp_path / "streamed.h5")
    monkeypatch.setattr(stage, "load_guidance", lambda guidance, round_index, cache, path, seed, stack:
                        whole_split_guidance(mode, guidance["gt_instance_fraction"], cache, path, seed))
    whole = run(tmp_path / "whole.h5")
    assert streamed.keys() == whole.keys() and "labels_before_guidance" in whole
    for name in whole:
        assert np.array_equal(streamed[name], whole[name]), name
    assert (whole["labels"] != whole["labels_before_guidance"]).any()  # the guidance changed labels


# ---------------------------------------------------------------------------------------------
# Self-training steps


def _train(model, step, section: dict, work: Path, workers: int, extra_state: dict) -> dict[str, torch.Tensor]:
    from selfpanoptic.settings import TrainSettings
    from selfpanoptic.train.engine import train

    train(model, step, TrainSettings.from_config(section), work, "id", torch.device("cpu"), progress=False,
          extra_state=extra_state, data_workers=workers)
    return {key: value.clone() for key, value in model.state_dict().items()}


def test_instance_selftraining_gives_the_same_weights_from_streamed_predictions(round0, split, tmp_path):
    from selfpanoptic.models import model_from_file
    from selfpanoptic.pseudo.teacher import frozen_copy
    from selfpanoptic.settings import InstanceLossSettings, SelfInstanceSettings
    from selfpanoptic.train.self_instance import SelfInstanceData, self_instance_step

    config = validate_config({"selftrain": {"instance": {
        "train": {"steps": 3, "batch_size": 2, "crop": [32, 48], "checkpoint_every": 100},
        "min_size": 4, "min_confidence": 0.0,
    }}})
    section, loss = config["selftrain"]["instance"], InstanceLossSettings.from_config(config["instance"]["loss"])

    def run(name: str, streamed: bool, workers: int) -> tuple[dict, int]:
        student = model_from_file(round0["instance"], "instance")
        ema = frozen_copy(student)
        stats: dict[str, int] = {}
        with DatasetCache.open(split["cache"], preload_mb=0) as target, \
                SemanticPrediction.open(split["semantic"], target.image_ids) as pred:
            if streamed:
                semantic, confidence = StackView(pred, "labels"), StackView(pred, "confidence", np.float32)
            else:
                semantic, confidence = pred["labels"][()], pred["confidence"][()].astype(np.float32)
            step = self_instance_step(ema, [13], SelfInstanceData(target, semantic, confidence),
                                      SelfInstanceSettings.from_config(section), loss, torch.device("cpu"), stats)
            assert len(step.caches) == (3 if streamed else 1)
            weights = _train(student, step, section["train"], tmp_path / name, workers, {"ema": ema})
        return weights, stats["pseudo_instances"]

    whole, made = run("whole", False, 0)
    assert made > 0  # the steps clustered pseudo instances from the prediction
    for name, workers in (("streamed", 0), ("worker", 2)):
        weights, count = run(name, True, workers)
        assert count == made  # counted in compute, in this process, workers or not
        for key, value in whole.items():
            assert torch.equal(value, weights[key]), (name, key)


def test_semantic_selftraining_gives_the_same_weights_with_streamed_guidance(round0, split, tmp_path):
    from selfpanoptic.classes import NUM_CLASSES
    from selfpanoptic.models import model_from_file
    from selfpanoptic.pseudo.teacher import frozen_copy
    from selfpanoptic.pseudo.thresholds import ClassPrior, initial_prior
    from selfpanoptic.settings import GuidanceSettings, SelfSemanticSettings
    from selfpanoptic.stages._guidance import load_guidance
    from selfpanoptic.train.self_semantic import SelfSemanticData, self_semantic_step

    section = validate_config({"selftrain": {"semantic": {
        "train": {"steps": 2, "batch_size": 2, "crop": [32, 48], "checkpoint_every": 100},
        "source_batch_size": 0, "alignment": 0.0, "threshold_floor": 0.0, "class_mix": False,
    }, "guidance": GUIDANCE}})["selftrain"]
    sem, rules = SelfSemanticSettings.from_config(section["semantic"]), GuidanceSettings.from_config(GUIDANCE)

    def run(name: str, streamed: bool, workers: int) -> dict:
        student = model_from_file(round0["semantic"], "semantic")
        teacher, prior = frozen_copy(student), ClassPrior(initial_prior(NUM_CLASSES))
        with contextlib.ExitStack() as stack:
            target = stack.enter_context(DatasetCache.open(split["cache"], preload_mb=0))
            if streamed:
                guide = load_guidance(GUIDANCE, 1, target, None, sem.train.seed, stack)
            else:
                guide = whole_split_guidance("ground_truth", 0.5, target, None, sem.train.seed)
            step = self_semantic_step(teacher, prior, SelfSemanticData(target, None, guide, rules), sem,
                                      torch.device("cpu"))
            return _train(student, step, section["semantic"]["train"], tmp_path / name, workers,
                          {"teacher": teacher, "prior": prior})

    whole = run("whole", False, 0)
    streamed = run("worker", True, 2)
    for key, value in whole.items():
        assert torch.equal(value, streamed[key]), key
