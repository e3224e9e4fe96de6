"""Data-parallel training: the process group, the global batch split by rank, and the
reductions that make N ranks compute what one process computes on the whole batch.

A rank is one process of a training job; ``selfpanoptic <training command> --processes N``
starts N of them (:mod:`selfpanoptic.launch`), and ``torchrun`` or ``srun`` may start them
instead: a rank reads the standard variables ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``MASTER_ADDR`` and ``MASTER_PORT``. Without them (or with ``WORLD_SIZE=1``) every function here
is the single-process computation, operation for operation, so one process gives the very
numbers it gave before data-parallel training existed.

How N ranks match one process (``batch_size`` stays the global batch):

- every rank prepares the step's whole batch from ``(seed, step)`` and keeps its slice
  (:func:`shard`), so every rank draws the same random numbers and continues the same stream;
- gradients are averaged over the ranks after the backward pass (:func:`average_gradients`);
- a mean over pixels of the batch is the global sum over the global count, scaled so that the
  average of the ranks' gradients is its gradient (:func:`global_mean`); a mean over equal-sized
  slices is the mean of the ranks' means (:func:`mean_over_ranks`);
- batch-norm statistics and channel-dropout masks are those of the global batch
  (:func:`selfpanoptic.models.data_parallel.convert_for_data_parallel`);
- whatever else a step updates (an EMA teacher, a class prior, a discriminator) is updated from
  those identical quantities, and :func:`check_same_state` proves it at every checkpoint.
"""

from __future__ import annotations

import datetime
import hashlib
import os
from typing import Any, Iterable, Mapping

import numpy as np
import torch
import torch.distributed as dist

from .errors import InputError, SelfPanopticError

RANK_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
"""What a launcher (``--processes``, torchrun, srun with a wrapper) sets for each rank."""


def launched_world() -> int:
    """The number of ranks this process was launched as one of (``$WORLD_SIZE``; 1 when unset)."""
    return int(os.environ.get("WORLD_SIZE", "1") or 1)


def is_distributed() -> bool:
    """Whether this process is one of several ranks with a live process group."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    """Ranks in the process group (1 without one)."""
    return dist.get_world_size() if is_distributed() else 1


def rank() -> int:
    """This process's rank (0 without a process group)."""
    return dist.get_rank() if is_distributed() else 0


def is_main() -> bool:
    """Whether this process writes files and prints progress: rank 0, or the only process."""
    return rank() == 0


def start(device: str, threads: int) -> torch.device:
    """Join the process group of the launched ranks; return this rank's device.

    ``device``: ``cuda`` (NCCL, the GPU ``$LOCAL_RANK`` of those visible) or ``cpu`` (gloo).
    ``threads``: CPU threads of the whole job, shared out among the ranks of this machine.
    """
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", launched_world()))
    torch.set_num_threads(max(1, threads // max(1, local_world)))
    if device == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise InputError(
                f"rank {local_rank} of this machine has no GPU: {torch.cuda.device_count()} visible",
                fix="start as many processes per machine as it has GPUs (--processes, resources.train.gpu)")
        torch.cuda.set_device(local_rank)
        selected = torch.device("cuda", local_rank)
    else:
        selected = torch.device("cpu")
    missing = [name for name in ("MASTER_ADDR", "MASTER_PORT") if not os.environ.get(name)]
    if missing:
        raise InputError(f"WORLD_SIZE is {launched_world()} but {' and '.join(missing)} are not set",
                         fix="start the ranks with --processes N, torchrun or srun, which set them")
    # a rank that waits on another rank's validation or checkpoint must not time out early
    dist.init_process_group("nccl" if device == "cuda" else "gloo", timeout=datetime.timedelta(hours=2),
                            device_id=selected if device == "cuda" else None)
    return selected


def stop() -> None:
    """Leave the process group cleanly: wait for every rank, then tear it down (without this,
    gloo ranks sometimes abort at exit)."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def abandon() -> None:
    """Tear down the process group without waiting for the other ranks (this rank has failed)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def shard(batch: Any, index: int | None = None, count: int | None = None) -> Any:
    """This rank's slice of a prepared batch: rank ``index`` of ``count`` keeps rows
    ``[index * n / count, (index + 1) * n / count)`` of every tensor and array (dimension 0).

    Tuples (named ones too), lists and dicts are sliced item by item; anything else (None, a
    number) is kept as it is. Every array must be batch-major with a length divisible by
    ``count``: a batch that cannot be split evenly raises :class:`InputError`.
    """
    index = rank() if index is None else index
    count = world_size() if count is None else count
    if count == 1:
        return batch
    if isinstance(batch, (torch.Tensor, np.ndarray)):
        rows = len(batch)
        if rows % count:
            raise InputError(
                f"a batch of {rows} rows cannot be split evenly over {count} processes",
                fix="make every batch size of the stage (train.batch_size, source_batch_size, "
                    "co_learning.target_batch_size; for instance self-training also source_fraction x batch_size) "
                    "a multiple of the number of processes")
        size = rows // count
        return batch[index * size:(index + 1) * size]
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):
        return type(batch)(*(shard(item, index, count) for item in batch))
    if isinstance(batch, (tuple, list)):
        return type(batch)(shard(item, index, count) for item in batch)
    if isinstance(batch, dict):
        return {key: shard(value, index, count) for key, value in batch.items()}
    return batch


def average_gradients(parameters: Iterable[torch.nn.Parameter]) -> None:
    """Replace each gradient by its mean over the ranks (after backward, before the optimiser).

    A parameter that received no gradient on some rank counts as zero there; one that received
    none on any rank keeps ``grad = None``, so the optimiser skips it as one process would.
    All gradients of a dtype and device travel in one all-reduce.
    """
    if not is_distributed():
        return
    groups: dict[tuple[torch.dtype, torch.device], list[torch.nn.Parameter]] = {}
    for p in parameters:
        if p.requires_grad:
            groups.setdefault((p.dtype, p.device), []).append(p)
    for params in groups.values():
        flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in params]
                         + [torch.tensor([float(p.grad is not None) for p in params], dtype=params[0].dtype,
                                         device=params[0].device)])
        dist.all_reduce(flat)
        has_grad = flat[-len(params):] > 0
        flat = flat[:-len(params)] / world_size()
        offset = 0
        for p, received in zip(params, has_grad.tolist()):
            n = p.numel()
            p.grad = flat[offset:offset + n].view_as(p).clone() if received else None
            offset += n


def global_mean(total: torch.Tensor, count: torch.Tensor, minimum: float | None = None) -> torch.Tensor:
    """``total / count`` over the global batch, from this rank's ``total`` (a differentiable sum)
    and ``count`` (how many terms it holds).

    One process: ``total / count`` (``count.clamp_min(minimum)`` first when given). N ranks: the
    counts are summed over the ranks, and ``total * N / global count`` is returned, so that the
    mean of the ranks' gradients (:func:`average_gradients`) and of their logged values is the
    gradient and value of the global mean.
    """
    if not is_distributed():
        return total / (count.clamp_min(minimum) if minimum is not None else count)
    count = count.detach().to(torch.float64 if count.device.type == "cpu" else torch.float32).clone()
    dist.all_reduce(count)
    if minimum is not None:
        count = count.clamp_min(minimum)
    return total * world_size() / count.to(total.dtype)


def mean_over_ranks(value: torch.Tensor) -> torch.Tensor:
    """The mean of ``value`` over the ranks (``value`` itself in one process); not differentiable.

    Equal to the quantity over the global batch when ``value`` is a mean over this rank's equal
    share of it (a class prior's batch mean, a logged loss)."""
    if not is_distributed():
        return value
    value = value.detach().clone()
    dist.all_reduce(value)
    return value / world_size()


def _state_tensors(state: Mapping[str, Any], prefix: str = "") -> Iterable[tuple[str, torch.Tensor]]:
    """``(name, tensor)`` of a nested state dict (model, optimiser, teacher, prior...)."""
    for key, value in state.items():
        name = f"{prefix}{key}"
        if isinstance(value, torch.Tensor):
            yield name, value
        elif isinstance(value, Mapping):
            yield from _state_tensors(value, name + ".")
        elif isinstance(value, (list, tuple)):
            yield from _state_tensors({str(i): v for i, v in enumerate(value)}, name + ".")


def state_fingerprints(states: Mapping[str, Any]) -> dict[str, str]:
    """A digest of every tensor of ``states`` (``{name: state_dict}``), by name: equal digests, equal bits."""
    digests = {}
    for name, tensor in _state_tensors(states):
        data = tensor.detach().cpu().contiguous()
        digests[name] = hashlib.blake2b(data.reshape(-1).view(torch.uint8).numpy().tobytes(),
                                        digest_size=16).hexdigest()
    return digests


class RanksDivergedError(SelfPanopticError):
    """The ranks of a data-parallel job no longer hold the same training state."""


def check_same_state(states: Mapping[str, Any], desc: str, step: int) -> None:
    """Raise :class:`RanksDivergedError` unless every rank holds bit-identical ``states``
    (``{name: state_dict}``: the model, the teacher, the prior, a discriminator)."""
    if not is_distributed():
        return
    mine = state_fingerprints(states)
    everyone: list[dict[str, str] | None] = [None] * world_size()
    dist.all_gather_object(everyone, mine)
    differing = sorted({name for other in everyone for name in mine if other.get(name) != mine[name]})
    if differing:
        raise RanksDivergedError(
            f"{desc}: after step {step} the ranks hold different training state ({', '.join(differing[:4])}"
            f"{' ...' if len(differing) > 4 else ''}); this is a bug in data-parallel training: please report it, "
            "and run with --processes 1 meanwhile")
