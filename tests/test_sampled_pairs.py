"""Sampled labelled pairs (a generator's samples) drawn in place of source pairs: the share of a
batch they take, their own labels and instances, and pretrain-semantic's option and its errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from selfpanoptic.augment.normalise import denormalise
from selfpanoptic.cli import main
from selfpanoptic.h5io import create_stack, write_strings
from selfpanoptic.intermediates import DatasetCache
from selfpanoptic.intermediates.base import atomic_h5
from selfpanoptic.train.data import SampledPairs, TranslatedImages, sample_batch
from test_training import tiny_cache

CPU = ["--device", "cpu", "--threads", "1", "--quiet"]
TRAIN = {"train": {"steps": 2, "batch_size": 2, "crop": [32, 64], "checkpoint_every": 100}}
SAMPLED_CLASS = 8  # vegetation: a label the tiny source never has


def sampled_cache(path: Path, count: int = 3, height: int = 32, width: int = 64) -> Path:
    """Stand-in samples: black images, every pixel labelled vegetation, no instances."""
    with atomic_h5(path, "dataset_cache", {"height": height, "width": width}) as h5:
        create_stack(h5, "images", count, (height, width, 3), np.uint8)[:] = 0
        create_stack(h5, "labels", count, (height, width), np.uint8)[:] = SAMPLED_CLASS
        create_stack(h5, "instances", count, (height, width), np.int32)[:] = 0
        write_strings(h5, "image_ids", [f"sample{i}" for i in range(count)])
        write_strings(h5, "datasets", ["gta"] * count)
    return path


@pytest.fixture(scope="module")
def caches(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("sampled")
    return {"source": tiny_cache(root / "source.h5"), "sampled": sampled_cache(root / "sampled.h5")}


@pytest.mark.parametrize("share", [0.0, 0.25, 1.0])
def test_a_share_of_the_draws_are_sampled_pairs_with_their_own_labels_and_no_instances(caches, share):
    taken = 0
    with DatasetCache.open(caches["source"]) as source, DatasetCache.open(caches["sampled"]) as sampled:
        for step in range(40):
            batch = sample_batch(source, np.random.default_rng(step), np.arange(len(source)), 8, (32, 64), hflip=False,
                                 sampled=SampledPairs(sampled, share))
            black = denormalise(batch.images).flatten(1).max(dim=1).values < 1e-3  # the source's images are noise
            taken += int(black.sum())
            assert (batch.labels[black] == SAMPLED_CLASS).all() and (batch.instances[black] == 0).all()
            assert not (batch.labels[~black] == SAMPLED_CLASS).any() and (batch.instances[~black] == 1).any(dim=(1, 2)).all()
    assert taken / 320 == pytest.approx(share, abs=0.08)


def test_a_sampled_pair_is_never_translated(caches):
    with DatasetCache.open(caches["source"]) as source, DatasetCache.open(caches["sampled"]) as sampled:
        # both shares 1: the sampled pair replaces the draw whole, labels included
        batch = sample_batch(source, np.random.default_rng(0), np.arange(len(source)), 8, (32, 64), hflip=False,
                             translated=TranslatedImages(source, 1.0), sampled=SampledPairs(sampled, 1.0))
    assert (batch.labels == SAMPLED_CLASS).all()


def test_without_samples_the_draws_are_unchanged(caches):
    with DatasetCache.open(caches["source"]) as source:
        plain = sample_batch(source, np.random.default_rng(3), np.arange(len(source)), 4, (16, 32))
        again = sample_batch(source, np.random.default_rng(3), np.arange(len(source)), 4, (16, 32), sampled=None)
    assert torch.equal(plain.images, again.images) and torch.equal(plain.labels, again.labels)


def pretrain(caches: dict[str, Path], tmp_path: Path, *extra: str) -> int:
    return main(["pretrain-semantic", "--semantic-settings", json.dumps(TRAIN), "--data", str(caches["source"]),
                 *extra, "--out", str(tmp_path / "m.pt"), "--work-dir", str(tmp_path / "w"), *CPU])


def test_pretraining_takes_sampled_pairs(caches, tmp_path):
    assert pretrain(caches, tmp_path, "--sampled", str(caches["sampled"]), "--sampled-share", "0.5") == 0
    assert (tmp_path / "m.pt").is_file()


@pytest.mark.parametrize("case, message", [
    ("share_only", "--sampled-share is 0.5 but no --sampled cache was given"),
    ("no_share", "--sampled-share must be in (0, 1] with --sampled, not 0.0"),
    ("other_size", "the sampled pairs are 16x32, the training data 32x64"),
])
def test_bad_sampled_pairs_are_refused_before_training(caches, tmp_path, capsys, case, message):
    other = sampled_cache(tmp_path / "small.h5", height=16, width=32)
    options = {"share_only": ["--sampled-share", "0.5"], "no_share": ["--sampled", str(caches["sampled"])],
               "other_size": ["--sampled", str(other), "--sampled-share", "0.5"]}[case]
    assert pretrain(caches, tmp_path, *options) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "m.pt").exists() and not (tmp_path / "w").exists()
