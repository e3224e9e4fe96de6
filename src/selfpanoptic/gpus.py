"""GPUs for the jobs of one machine: a small allocator with file locks, one or more jobs per GPU.

Snakemake's ``--resources gpu=N`` caps how many GPU jobs run at once, but does not say which
GPU each one takes. Each device has up to ``jobs_per_gpu`` lock slots
(``gpu<i>.slot<k>.lock`` in the lock folder); a job locks a free slot of the least-loaded device
that still has room (``fcntl.flock``; the lock dies with the process, so a killed job never
leaks its slot) and sets ``CUDA_VISIBLE_DEVICES`` to that device before CUDA is initialised.
``jobs_per_gpu`` (config ``resources.jobs_per_gpu``, passed by the workflow in
``$SELFPANOPTIC_JOBS_PER_GPU``) is 1 by default: a whole GPU per job. Small jobs that use a
fraction of a GPU's memory can share one (e.g. 4); each holder writes its own limit into its
slot, and a device takes no more jobs than the smallest limit among its holders and the
newcomer, so a job that asked for a GPU to itself keeps it even when another workflow on the
same machine shares GPUs. A scheduler that already set ``CUDA_VISIBLE_DEVICES`` (SLURM does)
is left alone.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
import time
from itertools import count as counter
from pathlib import Path
from typing import IO, Iterator

from .errors import InputError

COUNT_VARIABLE = "SELFPANOPTIC_GPU_COUNT"
"""Overrides the number of GPUs seen (tests simulate several GPUs with it)."""
LOCK_DIR_VARIABLE = "SELFPANOPTIC_GPU_LOCK_DIR"
JOBS_PER_GPU_VARIABLE = "SELFPANOPTIC_JOBS_PER_GPU"
"""Jobs that may share one GPU; the workflow sets it from ``resources.jobs_per_gpu`` (default 1)."""


def gpu_count() -> int:
    """GPUs on this machine: ``$SELFPANOPTIC_GPU_COUNT`` if set, else what torch sees."""
    if os.environ.get(COUNT_VARIABLE):
        return int(os.environ[COUNT_VARIABLE])
    import torch

    return torch.cuda.device_count()


def jobs_per_gpu_setting() -> int:
    """``$SELFPANOPTIC_JOBS_PER_GPU`` (an integer >= 1), 1 when unset."""
    text = os.environ.get(JOBS_PER_GPU_VARIABLE, "").strip()
    if not text:
        return 1
    if not text.isdigit() or int(text) < 1:
        raise InputError(
            f"${JOBS_PER_GPU_VARIABLE} is {text!r}, not an integer >= 1",
            fix=f"set resources.jobs_per_gpu in the config (the workflow sets ${JOBS_PER_GPU_VARIABLE} "
                f"from it), or unset ${JOBS_PER_GPU_VARIABLE} to give each job a whole GPU",
        )
    return int(text)


def default_lock_dir() -> Path:
    return Path(os.environ.get(LOCK_DIR_VARIABLE) or Path(tempfile.gettempdir()) / f"selfpanoptic-gpu-locks-{os.getuid()}")


def _holder_limits(folder: Path, index: int) -> list[int]:
    """The ``jobs_per_gpu`` of every job that holds a slot of device ``index`` now."""
    limits = []
    for path in folder.glob(f"gpu{index}.slot*.lock"):
        with open(path, "a+") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                text = handle.read().strip()
                # a slot's limit is written before the allocator lock is let go, so it is always
                # there; 1 (exclusive) is the safe reading should the file be damaged
                limits.append(int(text) if text.isdigit() and int(text) >= 1 else 1)
            else:
                fcntl.flock(handle, fcntl.LOCK_UN)
    return limits


def _take_slot(folder: Path, count: int, limit: int) -> tuple[int, IO[str]] | None:
    """Lock a free slot of the least-loaded device with room: ``(device, open slot file)``, or None."""
    with open(folder / "allocator.lock", "a+") as guard:
        # one claimer at a time (for milliseconds): the loads it counts cannot rise under it
        fcntl.flock(guard, fcntl.LOCK_EX)
        holders = [_holder_limits(folder, index) for index in range(count)]
        with_room = [index for index in range(count) if len(holders[index]) < min([limit, *holders[index]])]
        if not with_room:
            return None
        index = min(with_room, key=lambda i: (len(holders[i]), i))
        for slot in counter():  # ends: a device with room has a free slot
            handle = open(folder / f"gpu{index}.slot{slot}.lock", "a+")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            handle.seek(0)
            handle.truncate()
            handle.write(str(limit))
            handle.flush()
            return index, handle


def _claimable(count: int | None) -> int | None:
    """The GPUs of the machine a job may claim from (``count``, default :func:`gpu_count`), or None
    when it claims none: ``CUDA_VISIBLE_DEVICES`` is already set (a scheduler chose) or there is no GPU."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", "") != "":
        return None
    count = gpu_count() if count is None else count
    return count if count > 0 else None


def _take_whole(folder: Path, count: int, wanted: int) -> list[tuple[int, IO[str]]] | None:
    """Lock ``wanted`` devices that no job holds, each for this job alone: ``[(device, slot file)]``, or None."""
    with open(folder / "allocator.lock", "a+") as guard:
        fcntl.flock(guard, fcntl.LOCK_EX)
        idle = [index for index in range(count) if not _holder_limits(folder, index)]
        if len(idle) < wanted:
            return None
        taken = []
        for index in idle[:wanted]:
            handle = open(folder / f"gpu{index}.slot0.lock", "a+")
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)  # idle: no holder, so it is free
            handle.seek(0)
            handle.truncate()
            handle.write("1")
            handle.flush()
            taken.append((index, handle))
        return taken


@contextlib.contextmanager
def claim_gpus(wanted: int, count: int | None = None, lock_dir: str | Path | None = None,
               poll_seconds: float = 0.5) -> Iterator[list[int] | None]:
    """Hold ``wanted`` whole GPUs at once for the duration of the block (a data-parallel job).

    ``wanted`` 1 is :func:`claim_gpu` (a GPU or a share of one, ``jobs_per_gpu``). For more, the
    job waits until that many devices are idle and takes them all in one step (never some now and
    the rest later: two such jobs would each hold half and wait for ever), each to itself, and
    sets ``CUDA_VISIBLE_DEVICES`` to them. Yields their indices, or None when nothing is claimed
    (``CUDA_VISIBLE_DEVICES`` already set, or no GPU). A machine with fewer GPUs than ``wanted``
    is an :class:`~selfpanoptic.errors.InputError`.
    """
    if wanted <= 1:
        with claim_gpu(count, lock_dir, poll_seconds) as index:
            yield None if index is None else [index]
        return
    count = _claimable(count)
    if count is None:
        yield None
        return
    if count < wanted:
        raise InputError(f"{wanted} GPUs were asked for, but this machine has {count}",
                         fix="lower --processes (resources.train.gpu) to at most the GPUs of one machine")
    folder = Path(lock_dir) if lock_dir else default_lock_dir()
    folder.mkdir(parents=True, exist_ok=True)
    while (taken := _take_whole(folder, count, wanted)) is None:
        time.sleep(poll_seconds)
    os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(str(index) for index, _ in taken)
    try:
        yield [index for index, _ in taken]
    finally:
        del os.environ["CUDA_VISIBLE_DEVICES"]
        for _, handle in taken:
            fcntl.flock(handle, fcntl.LOCK_UN)
            handle.close()


@contextlib.contextmanager
def claim_gpu(count: int | None = None, lock_dir: str | Path | None = None, poll_seconds: float = 0.5,
              jobs_per_gpu: int | None = None) -> Iterator[int | None]:
    """Hold a GPU (or a share of one) for the duration of the block.

    Parameters
    ----------
    count:
        GPUs on the machine (default :func:`gpu_count`).
    lock_dir:
        Folder of the lock files (default ``$SELFPANOPTIC_GPU_LOCK_DIR``, else a per-user folder
        in the temporary directory); every job of the machine must use the same one.
    poll_seconds:
        How often a job that found no room looks again.
    jobs_per_gpu:
        How many jobs, this one included, may share its device (default
        ``$SELFPANOPTIC_JOBS_PER_GPU``, else 1).

    Yields
    ------
    int or None
        The device index, also set as ``CUDA_VISIBLE_DEVICES``; None when nothing is claimed:
        ``CUDA_VISIBLE_DEVICES`` was already set or there is no GPU. When no device has room,
        waits until one has.
    """
    count = _claimable(count)
    if count is None:
        yield None
        return
    limit = jobs_per_gpu_setting() if jobs_per_gpu is None else jobs_per_gpu
    if limit < 1:
        raise ValueError(f"jobs_per_gpu must be >= 1, got {limit}")
    folder = Path(lock_dir) if lock_dir else default_lock_dir()
    folder.mkdir(parents=True, exist_ok=True)
    while (claimed := _take_slot(folder, count, limit)) is None:
        time.sleep(poll_seconds)
    index, handle = claimed
    os.environ["CUDA_VISIBLE_DEVICES"] = str(index)
    try:
        yield index
    finally:
        del os.environ["CUDA_VISIBLE_DEVICES"]
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()
