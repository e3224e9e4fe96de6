"""One training loop for every stage: optimiser, schedule, AMP, checkpoints, resume, logs.

The loop is deliberately plain (as in torchvision's reference scripts). What it adds:

- Every step draws its randomness from ``(seed, step)``: the batch, the augmentation and torch's
  global RNG. A run resumed from a checkpoint therefore takes exactly the steps an uninterrupted
  run takes, and on the CPU ends with bit-identical weights.
- A checkpoint (model, optimiser, step, RNG states, settings hash) is written atomically every
  ``checkpoint_every`` steps. A rerun of the stage resumes from it when the settings hash matches,
  and starts over (saying so) when it does not. It is deleted once the final model is written.
- A non-finite loss stops training with an error naming the step and the loss parts.
- ``metrics.csv`` gets one row per step (losses, learning rate, images/s).
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from ..atomic import atomic_output
from ..errors import SelfPanopticError
from ..h5io import config_hash

StepFn = Callable[[nn.Module, np.random.Generator, int], tuple[torch.Tensor, dict[str, float], int]]
"""step_fn(model, rng, step) -> (loss, loss parts for the log, number of images in the batch)."""


class NonFiniteLossError(SelfPanopticError):
    """The loss became NaN or infinite."""


@dataclass
class TrainResult:
    steps: int
    resumed_from: int
    seconds: float
    images_per_second: float

    def summary(self) -> str:
        """One line for the log: steps, wall time, throughput."""
        return f"{self.steps} steps in {self.seconds:.1f} s ({self.images_per_second:.1f} images/s)"


def step_rng(seed: int, step: int) -> np.random.Generator:
    """The numpy generator of one step; also reseeds torch and Python's RNG from (seed, step)."""
    sequence = np.random.SeedSequence([seed, step])
    torch_seed, python_seed = sequence.generate_state(2, dtype=np.uint32)
    torch.manual_seed(int(torch_seed))
    random.seed(int(python_seed))
    return np.random.default_rng(sequence)


def build_optimizer(model: nn.Module, settings: dict[str, Any]) -> torch.optim.Optimizer:
    """SGD (with momentum) or Adam; head parameters get ``lr * head_lr_mult``."""
    head = model.head_parameters() if hasattr(model, "head_parameters") else []
    head_ids = {id(p) for p in head}
    base = [p for p in model.parameters() if id(p) not in head_ids and p.requires_grad]
    lr = settings["lr"]
    groups = [{"params": base, "lr": lr, "initial_lr": lr}]
    if head:
        head_lr = lr * settings["head_lr_mult"]
        groups.append({"params": [p for p in head if p.requires_grad], "lr": head_lr, "initial_lr": head_lr})
    if settings["optimizer"] == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=settings["momentum"], weight_decay=settings["weight_decay"])
    return torch.optim.Adam(groups, lr=lr, weight_decay=settings["weight_decay"])


def learning_rate_factor(schedule: str, step: int, total: int, power: float = 0.9) -> float:
    """Multiplier of the initial learning rate at ``step`` of ``total``: constant, poly or cosine."""
    progress = min(step / max(total, 1), 1.0)
    if schedule == "poly":
        return (1.0 - progress) ** power
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    return 1.0


def _rng_states() -> dict[str, Any]:
    states = {"torch": torch.get_rng_state(), "numpy": torch.from_numpy(np.random.get_state()[1].copy())}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def save_checkpoint(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer, step: int,
                    settings_hash: str, scaler: torch.amp.GradScaler | None,
                    extra_state: dict[str, Any] | None = None) -> None:
    state = {
        "model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step,
        "settings_hash": settings_hash, "rng": _rng_states(),
        "scaler": scaler.state_dict() if scaler is not None else {},
        "extra": {name: obj.state_dict() for name, obj in (extra_state or {}).items()},
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


def _truncate_log(log_path: Path, last_step: int) -> None:
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


def train(
    model: nn.Module,
    step_fn: StepFn,
    settings: dict[str, Any],
    work_dir: str | Path,
    identity: Any,
    device: torch.device,
    desc: str = "train",
    progress: bool = True,
    extra_state: dict[str, Any] | None = None,
) -> TrainResult:
    """Train ``model`` for ``settings["steps"]`` steps of ``step_fn``.

    work_dir: folder for ``checkpoint.pt`` and ``metrics.csv`` (not a workflow output, so a
    crashed job keeps it). identity: everything that defines the run (its config sections and
    inputs); a checkpoint made under another identity is not resumed. extra_state: further
    training state besides the model (a teacher network, a class prior), as objects with
    ``state_dict()`` / ``load_state_dict()``; checkpointed and restored with the model.
    """
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    with _work_dir_lock(work_dir, desc):
        return _train(model, step_fn, settings, work_dir, identity, device, desc, progress, extra_state)


@contextlib.contextmanager
def _work_dir_lock(work_dir: Path, desc: str) -> Iterator[None]:
    """Hold an exclusive lock on ``work_dir`` while training into it.

    A job orphaned by a killed Snakemake may still train into the folder its rerun uses; two
    writers of one checkpoint and log would race, so the second one stops with a message.
    """
    with open(work_dir / ".lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SelfPanopticError(
                f"{desc}: another process is training into {work_dir} (a job of an earlier, killed run?)\n"
                "  fix: let it finish or stop it (pkill -f 'selfpanoptic '), then rerun"
            ) from None
        yield


def _train(model, step_fn, settings, work_dir: Path, identity, device, desc, progress, extra_state) -> TrainResult:
    checkpoint_path = work_dir / "checkpoint.pt"
    log_path = work_dir / "metrics.csv"
    run_hash = config_hash(identity)
    total = settings["steps"]
    model.to(device)
    optimizer = build_optimizer(model, settings)
    use_amp = bool(settings.get("amp", True)) and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda") if use_amp else None

    start = 0
    checkpoint = load_checkpoint(checkpoint_path)
    if checkpoint is not None and checkpoint["settings_hash"] == run_hash:
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        if scaler is not None and checkpoint["scaler"]:
            scaler.load_state_dict(checkpoint["scaler"])
        for name, obj in (extra_state or {}).items():
            obj.load_state_dict(checkpoint["extra"][name])
        start = int(checkpoint["step"])
        print(f"{desc}: resuming from the checkpoint at step {start} of {total}", flush=True)
    elif checkpoint is not None:
        print(f"{desc}: ignoring a checkpoint made with other settings; starting from step 0", flush=True)
        log_path.unlink(missing_ok=True)
    if start == 0:
        log_path.unlink(missing_ok=True)
    else:
        _truncate_log(log_path, start)

    model.train()
    began, images_seen = time.perf_counter(), 0
    bar = tqdm(total=total, initial=start, desc=desc, disable=not progress, unit="step")
    with open(log_path, "a", newline="") as log_file:
        writer = None
        for step in range(start, total):
            factor = learning_rate_factor(settings["schedule"], step, total, settings["poly_power"])
            for group in optimizer.param_groups:
                group["lr"] = group["initial_lr"] * factor
            rng = step_rng(settings["seed"], step)
            tick = time.perf_counter()
            with torch.autocast(device.type, enabled=use_amp):
                loss, parts, batch_images = step_fn(model, rng, step)
            if not torch.isfinite(loss):
                raise NonFiniteLossError(
                    f"{desc}: the loss became {loss.item()} at step {step} (parts: {parts}); "
                    "lower the learning rate or check the inputs"
                )
            optimizer.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
            else:
                loss.backward()
                optimizer.step()
            elapsed = time.perf_counter() - tick
            images_seen += batch_images
            row = {"step": step + 1, "loss": float(loss.detach()), **parts,
                   "lr": optimizer.param_groups[0]["lr"], "images_per_s": batch_images / max(elapsed, 1e-9)}
            if writer is None:
                writer = csv.DictWriter(log_file, fieldnames=list(row))
                if start == 0 or log_file.tell() == 0:
                    writer.writeheader()
            writer.writerow(row)
            bar.set_postfix(loss=f"{row['loss']:.3f}", img_s=f"{row['images_per_s']:.1f}")
            bar.update(1)
            done = step + 1
            if done % settings["checkpoint_every"] == 0 and done < total:
                log_file.flush()
                save_checkpoint(checkpoint_path, model, optimizer, done, run_hash, scaler, extra_state)
    bar.close()
    seconds = time.perf_counter() - began
    return TrainResult(total, start, seconds, images_seen / max(seconds, 1e-9))


def save_model_file(path: str | Path, model: nn.Module, kind: str, spec: dict[str, Any], extra: dict[str, Any] | None = None) -> None:
    """Write the trained model (weights + the model spec to rebuild it) atomically."""
    state = {"kind": kind, "spec": spec, "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}}
    state.update(extra or {})
    with atomic_output(path) as tmp:
        torch.save(state, tmp)


def finish(work_dir: str | Path) -> None:
    """Remove the checkpoint once the final model is written, so a later rerun starts fresh."""
    (Path(work_dir) / "checkpoint.pt").unlink(missing_ok=True)
