"""One GPU per job on a machine with several: a small allocator with file locks.

Snakemake's ``--resources gpu=N`` caps how many GPU jobs run at once, but does not say which
GPU each one takes. A job claims the first device whose lock file it can lock exclusively
(``fcntl.flock``; the lock dies with the process, so a killed job never leaks its GPU) and
sets ``CUDA_VISIBLE_DEVICES`` to it before CUDA is initialised. A scheduler that already set
``CUDA_VISIBLE_DEVICES`` (SLURM does) is left alone.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
import time
from pathlib import Path
from typing import Iterator

COUNT_VARIABLE = "SELFPANOPTIC_GPU_COUNT"
"""Overrides the number of GPUs seen (tests simulate several GPUs with it)."""
LOCK_DIR_VARIABLE = "SELFPANOPTIC_GPU_LOCK_DIR"


def gpu_count() -> int:
    """GPUs on this machine: ``$SELFPANOPTIC_GPU_COUNT`` if set, else what torch sees."""
    if os.environ.get(COUNT_VARIABLE):
        return int(os.environ[COUNT_VARIABLE])
    import torch

    return torch.cuda.device_count()


def default_lock_dir() -> Path:
    return Path(os.environ.get(LOCK_DIR_VARIABLE) or Path(tempfile.gettempdir()) / f"selfpanoptic-gpu-locks-{os.getuid()}")


@contextlib.contextmanager
def claim_gpu(count: int | None = None, lock_dir: str | Path | None = None, poll_seconds: float = 0.5) -> Iterator[int | None]:
    """Hold one GPU for the duration of the block; yields its index, or None when nothing is claimed.

    Nothing is claimed when ``CUDA_VISIBLE_DEVICES`` is already set or there is no GPU. When all
    devices are taken (another workflow on the same machine), waits until one is free.
    """
    if os.environ.get("CUDA_VISIBLE_DEVICES", "") != "":
        yield None
        return
    count = gpu_count() if count is None else count
    if count <= 0:
        yield None
        return
    folder = Path(lock_dir) if lock_dir else default_lock_dir()
    folder.mkdir(parents=True, exist_ok=True)
    while True:
        for index in range(count):
            handle = open(folder / f"gpu{index}.lock", "a+")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            os.environ["CUDA_VISIBLE_DEVICES"] = str(index)
            try:
                yield index
            finally:
                del os.environ["CUDA_VISIBLE_DEVICES"]
                fcntl.flock(handle, fcntl.LOCK_UN)
                handle.close()
            return
        time.sleep(poll_seconds)
