"""Training checkpoints: write, read and resume from them, and cut the log back to them.

A checkpoint holds the model, the optimiser, the step, the RNG states, the gradient scaler, any
extra training state and the hash of the settings it was made under; it is written atomically,
so a killed job leaves the previous one whole. See :mod:`~selfpanoptic.train.engine`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..atomic import atomic_output
from ..distributed import world_size


def _rng_states() -> dict[str, Any]:
    """torch's CPU (and every CUDA device's) and numpy's global RNG states, as tensors."""
    states = {"torch": torch.get_rng_state(), "numpy": torch.from_numpy(np.random.get_state()[1].copy())}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def save_checkpoint(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer, step: int,
                    settings_hash: str, scaler: torch.amp.GradScaler | None,
                    extra_state: dict[str, Any] | None = None) -> None:
    """Write the training state after ``step`` steps to ``path``, atomically.

    ``extra_state``: further objects with ``state_dict()`` (a teacher network, a class prior).
    """
    state = {
        "model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step,
        "settings_hash": settings_hash, "rng": _rng_states(),
        "scaler": scaler.state_dict() if scaler is not None else {},
        "extra": {name: obj.state_dict() for name, obj in (extra_state or {}).items()},
        "processes": world_size(),
    }
    with atomic_output(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: Path) -> dict[str, Any] | None:
    """The checkpoint at ``path``, or None when there is none or it cannot be read.

    An unreadable checkpoint (truncated by a full disk, from another version) is not worth
    stopping for: the run starts from step 0, with a warning naming the file.
    """
    if not path.is_file():
        return None
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(checkpoint, dict) or not {"settings_hash", "model", "step"} <= set(checkpoint):
            raise ValueError("not a training checkpoint")
    except Exception as exc:  # any unreadable file: RuntimeError, EOFError, UnpicklingError, ...
        print(f"warning: ignoring the unreadable checkpoint {path} ({type(exc).__name__}); starting from step 0",
              flush=True)
        return None
    return checkpoint


def truncate_log(log_path: Path, last_step: int) -> None:
    """Drop the log rows of steps after ``last_step`` (run after the checkpoint, then lost)."""
    if not log_path.is_file():
        return
    lines = log_path.read_text().splitlines(keepends=True)
    def logged_step(line: str) -> int:
        head = line.split(",", 1)[0]
        # a line cut short by the kill has no newline: drop it with the steps after the checkpoint
        return int(head) if head.isdigit() and line.endswith("\n") else last_step + 1

    kept = lines[:1] + [line for line in lines[1:] if logged_step(line) <= last_step]
    with atomic_output(log_path) as tmp:
        tmp.write_text("".join(kept))


def resume(checkpoint_path: Path, run_hash: str, model: nn.Module, optimizer: torch.optim.Optimizer,
           scaler: torch.amp.GradScaler | None, extra_state: dict[str, Any] | None, desc: str, total: int) -> int:
    """Restore the training state from the checkpoint when it was made under ``run_hash``.

    Returns the step to start from: the checkpoint's, or 0 when there is no usable checkpoint
    (none, unreadable, or made with other settings, which is said).
    """
    checkpoint = load_checkpoint(checkpoint_path)
    if checkpoint is None:
        return 0
    if checkpoint["settings_hash"] != run_hash:
        print(f"{desc}: ignoring a checkpoint made with other settings; starting from step 0", flush=True)
        return 0
    model.load_state_dict(checkpoint["model"])
    optimizer.load_state_dict(checkpoint["optimizer"])
    if scaler is not None and checkpoint["scaler"]:
        scaler.load_state_dict(checkpoint["scaler"])
    for name, obj in (extra_state or {}).items():
        obj.load_state_dict(checkpoint["extra"][name])
    start = int(checkpoint["step"])
    print(f"{desc}: resuming from the checkpoint at step {start} of {total}", flush=True)
    made_by = int(checkpoint.get("processes", 1))
    if made_by != world_size():
        print(f"warning: {desc}: the checkpoint was made by {made_by} processes and this run has {world_size()}: "
              "the batches stay the same, but sums over the batch are taken in another order, so the weights "
              "will not be bit-identical to an uninterrupted run", flush=True)
    return start
