"""The pieces of data-parallel training that need no second process: slicing a batch by rank, the
single-process reductions, the config check of batch sizes, and claiming several GPUs at once."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from typing import NamedTuple

import numpy as np
import pytest
import torch

from selfpanoptic import distributed
from selfpanoptic.config import validate_config
from selfpanoptic.errors import InputError
from selfpanoptic.gpus import claim_gpus


class Pair(NamedTuple):
    images: torch.Tensor
    extra: object


def test_shard_keeps_each_rank_its_rows_of_every_array():
    batch = Pair(torch.arange(8).reshape(4, 2), {"noise": np.arange(8), "none": None, "n": 3})
    first, second = distributed.shard(batch, 0, 2), distributed.shard(batch, 1, 2)
    assert isinstance(first, Pair)
    assert first.images.tolist() == [[0, 1], [2, 3]] and second.images.tolist() == [[4, 5], [6, 7]]
    # a (B * V, ...) array of views, image-major, splits with its images
    assert first.extra["noise"].tolist() == [0, 1, 2, 3] and second.extra["noise"].tolist() == [4, 5, 6, 7]
    assert first.extra["none"] is None and second.extra["n"] == 3
    assert distributed.shard(batch, 0, 1) is batch


def test_a_batch_that_does_not_split_evenly_is_refused():
    with pytest.raises(InputError, match="3 rows cannot be split evenly over 2 processes"):
        distributed.shard((torch.zeros(3, 2),), 0, 2)


def test_one_process_reductions_are_the_plain_ones():
    total, count = torch.tensor(6.0), torch.tensor(4)
    assert distributed.global_mean(total, count).item() == 1.5
    assert distributed.global_mean(total, torch.tensor(0), minimum=1).item() == 6.0
    value = torch.tensor([0.25, 0.75])
    assert distributed.mean_over_ranks(value) is value
    assert distributed.world_size() == 1 and distributed.rank() == 0 and distributed.is_main()


def test_gradients_of_one_process_are_left_alone():
    p = torch.nn.Parameter(torch.ones(2))
    p.grad = torch.tensor([1.0, 2.0])
    distributed.average_gradients([p])
    assert p.grad.tolist() == [1.0, 2.0]


def test_state_fingerprints_see_one_changed_bit():
    state = {"model": {"w": torch.ones(3), "step": torch.tensor(2)}, "prior": {"value": torch.zeros(2)}}
    before = distributed.state_fingerprints(state)
    state["model"]["w"][1] = float(np.nextafter(np.float32(1), np.float32(2)))
    after = distributed.state_fingerprints(state)
    assert {name for name in before if before[name] != after[name]} == {"model.w"}


def test_batch_sizes_must_split_over_the_training_processes():
    validate_config({"resources": {"train": {"processes": 2}}, "semantic": {"train": {"batch_size": 4}}})
    with pytest.raises(InputError, match=r"semantic.train.batch_size is 3, which does not split evenly over the 2"):
        validate_config({"resources": {"train": {"processes": 2}}, "semantic": {"train": {"batch_size": 3}}})
    # processes 0: one per GPU of the job
    with pytest.raises(InputError, match="source_batch_size is 3"):
        validate_config({"resources": {"train": {"gpu": 2}}, "selftrain": {"semantic": {"source_batch_size": 3}}})
    validate_config({"resources": {"train": {"gpu": 0}}, "semantic": {"train": {"batch_size": 3}}})


SECOND_JOB = """
import sys
from selfpanoptic.gpus import claim_gpus
with claim_gpus(2, count=3, lock_dir=sys.argv[1], poll_seconds=0.02) as claimed:
    print(claimed, flush=True)
"""


def test_gpus_of_a_job_are_claimed_all_at_once(tmp_path, monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    env = {k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"}
    with claim_gpus(2, count=3, lock_dir=tmp_path, poll_seconds=0.02) as first:
        assert first == [0, 1] and os.environ["CUDA_VISIBLE_DEVICES"] == "0,1"
        second = subprocess.Popen([sys.executable, "-c", SECOND_JOB, str(tmp_path)], env=env,
                                  stdout=subprocess.PIPE, text=True)
        time.sleep(1.0)
        assert second.poll() is None  # one GPU is idle, but the job needs two: it takes none and waits
    assert "CUDA_VISIBLE_DEVICES" not in os.environ
    assert second.communicate(timeout=60)[0].strip() == "[0, 1]"


def test_more_gpus_than_the_machine_has_is_an_error(tmp_path, monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    with pytest.raises(InputError, match="4 GPUs were asked for, but this machine has 2"):
        with claim_gpus(4, count=2, lock_dir=tmp_path):
            pass
