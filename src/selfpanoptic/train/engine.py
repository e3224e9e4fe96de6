"""One training loop for every stage: optimiser, schedule, AMP, checkpoints, resume, logs.

The loop is deliberately plain (as in torchvision's reference scripts). What it adds:

- Every step draws its randomness from ``(seed, step)``: the batch, the augmentation and torch's
  global RNG. A run resumed from a checkpoint therefore takes exactly the steps an uninterrupted
  run takes, and on the CPU ends with bit-identical weights.
- A step has two halves (:class:`TrainingStep`): ``prepare`` reads and augments the batch on the
  host, ``compute`` runs the model. With ``data_workers > 0`` worker processes prepare the next
  batches while the accelerator computes (pinned memory, non-blocking copies). The worker
  hands back the step's numpy generator as it left it, so ``compute`` continues the very same
  random stream: where the batch is prepared never changes the result.
- Mixed precision on CUDA: bfloat16 where the GPU supports it (no loss scaling), else float16 with
  a gradient scaler; optional channels-last memory format and ``torch.compile``.
- A checkpoint (model, optimiser, step, RNG states, settings hash) is written atomically every
  ``checkpoint_every`` steps. A rerun of the stage resumes from it when the settings hash matches,
  and starts over (saying so) when it does not. It is deleted once the final model is written.
- A non-finite loss stops training with an error naming the step and the loss parts.
- ``metrics.csv`` gets one row per step (losses, learning rate, images/s, seconds spent waiting
  for the batch). The loss parts are read back from the device once per step, together.
- The same rows go to TensorBoard (``tensorboard/``, :mod:`~selfpanoptic.train.tensorboard`),
  with pictures of the step every ``log_images_every`` steps (when ``compute`` offers them, see
  :class:`TrainingStep`) and, every ``validate_every`` steps, the scores of the stage's validator.
  Neither draws a random number or changes the model, so the weights stay those of a run without.
- Data-parallel (``--processes N``, :mod:`selfpanoptic.distributed`): every rank prepares the
  step's whole batch and computes its slice; gradients are averaged over the ranks, batch norm
  spans the global batch, and the logged losses are the global ones. Rank 0 alone holds the work
  folder's lock and writes the log, TensorBoard, checkpoints and the model; at every checkpoint
  the ranks prove they hold the same state. A checkpoint resumes under another number of ranks
  (the batches are the same; the sums are taken in another order), with a warning.
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import math
import multiprocessing
import os
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from .. import distributed
from ..atomic import atomic_output
from ..errors import SelfPanopticError
from ..models.data_parallel import convert_for_data_parallel
from ..h5io import config_hash
from ..settings import TrainSettings
from .checkpoints import resume, save_checkpoint, truncate_log
from .optim import build_optimizer, learning_rate_factor
from .tensorboard import TrainingBoard

StepFn = Callable[[nn.Module, np.random.Generator, int], tuple[torch.Tensor, dict[str, Any], int]]
"""step_fn(model, rng, step) -> (loss, loss parts for the log, number of images in the batch).

Loss parts are floats or 0-dim tensors (read back from the device together, once per step)."""


@dataclass
class TrainingStep:
    """A training step in two halves, so that batches can be prepared ahead of the model.

    prepare(rng, step) -> batch: host-side work only (reading the cache, crops, flips, colour
    jitter, random numbers for later); runs in a worker process when the engine has
    ``data_workers``, so it must not touch the model or CUDA, and its result must pickle (numpy
    arrays, CPU tensors). compute(model, batch, rng, step) -> (loss, parts, images): the model's
    work; ``rng`` is the generator ``prepare`` drew from, continued. ``compute`` may also return a
    fourth element, ``visualise() -> {name: (N, 3, H, W) images in [0, 1]}`` over tensors it
    already has (:mod:`~selfpanoptic.train.visuals`); the engine calls it only on the steps that
    log images. caches: the
    :class:`~selfpanoptic.intermediates.DatasetCache` objects and per-image views
    (:class:`~selfpanoptic.intermediates.StackView`) ``prepare`` reads, reopened in each
    worker (an HDF5 handle is not shared across a fork).

    Calling the object runs both halves in this process (tests, simple callers).
    """

    prepare: Callable[[np.random.Generator, int], Any]
    compute: Callable[[nn.Module, Any, np.random.Generator, int], tuple[torch.Tensor, dict[str, Any], int]]
    caches: Sequence[Any] = field(default_factory=tuple)

    def __call__(self, model: nn.Module, rng: np.random.Generator, step: int):
        return self.compute(model, self.prepare(rng, step), rng, step)


def as_training_step(step: TrainingStep | StepFn) -> TrainingStep:
    """``step`` as a :class:`TrainingStep`; a plain ``step_fn(model, rng, step)`` prepares nothing ahead."""
    if isinstance(step, TrainingStep):
        return step
    return TrainingStep(prepare=lambda rng, index: None, compute=lambda model, _, rng, index: step(model, rng, index))


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
        return f"{self.steps} steps in {self.seconds:.1f} s ({rate_text(self.images_per_second)} images/s)"


def rate_text(value: float) -> str:
    """A throughput for the log, to at least 3 significant figures: ``1234.5``, ``12.3``, ``0.0123``
    (one decimal printed 0.0 below 0.05 images/s, a real-resolution step on a CPU). metrics.csv
    keeps the number itself."""
    return f"{value:.1f}" if value >= 100 else f"{value:.3g}"


def data_rng(seed: int, step: int) -> np.random.Generator:
    """The numpy generator of one step, from (seed, step) alone (what ``prepare`` draws from)."""
    return np.random.default_rng(np.random.SeedSequence([seed, step]))


def step_rng(seed: int, step: int) -> np.random.Generator:
    """The numpy generator of one step (:func:`data_rng`); also reseeds torch and Python's RNG from (seed, step)."""
    sequence = np.random.SeedSequence([seed, step])
    torch_seed, python_seed = sequence.generate_state(2, dtype=np.uint32)
    torch.manual_seed(int(torch_seed))
    random.seed(int(python_seed))
    return np.random.default_rng(sequence)


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask: what SLURM or taskset granted)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class _PreparedSteps(torch.utils.data.Dataset):
    """Steps ``start..total-1`` as a dataset: item i is (step, prepared batch, the step's generator)."""

    def __init__(self, step: TrainingStep, seed: int, start: int, total: int):
        self.step, self.seed, self.start, self.total = step, seed, start, total

    def __len__(self) -> int:
        return self.total - self.start

    def __getitem__(self, item: int):
        index = self.start + item
        rng = data_rng(self.seed, index)
        return index, self.step.prepare(rng, index), rng


def _unchanged(item):
    return item


def _reopen_caches(worker_id: int) -> None:
    """Worker start: a thread for torch, and a fresh HDF5 handle for every cache (and view) read
    from disk; a file behind several of them is reopened once."""
    torch.set_num_threads(1)
    info = torch.utils.data.get_worker_info()
    for cache in info.dataset.step.caches:
        cache.reopen()


def prepared_batches(step: TrainingStep, seed: int, start: int, total: int, workers: int,
                     pin_memory: bool, prefetch: int = 2) -> Iterator[tuple[int, Any, np.random.Generator]]:
    """``(step, batch, generator)`` for steps ``start..total-1``, in order.

    workers = 0: each batch is prepared when asked for, in this process. workers > 0: a
    :class:`torch.utils.data.DataLoader` of that many processes keeps ``prefetch`` batches per
    worker ready, in pinned memory when ``pin_memory``. Either way batch and generator depend only
    on (seed, step).
    """
    if workers > 0 and "fork" not in multiprocessing.get_all_start_methods():
        # the steps are closures over open caches: workers must inherit them (fork), not unpickle them
        print("data workers need the fork start method, which this platform lacks; preparing batches inline",
              flush=True)
        workers = 0
    if workers <= 0:
        for index in range(start, total):
            rng = data_rng(seed, index)
            yield index, step.prepare(rng, index), rng
        return
    loader = torch.utils.data.DataLoader(
        _PreparedSteps(step, seed, start, total), batch_size=None, shuffle=False, num_workers=workers,
        collate_fn=_unchanged, pin_memory=pin_memory, prefetch_factor=prefetch, worker_init_fn=_reopen_caches,
        multiprocessing_context="fork",
    )
    yield from loader


def optimizer_step(loss: torch.Tensor, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler | None) -> None:
    """Back-propagate ``loss`` and step ``optimizer``; through the gradient scaler when there is one
    (float16). In a data-parallel job the gradients are averaged over the ranks in between."""
    optimizer.zero_grad(set_to_none=True)
    if scaler is not None:
        scaler.scale(loss).backward()
        distributed.average_gradients(p for group in optimizer.param_groups for p in group["params"])
        scaler.step(optimizer)
        scaler.update()
    else:
        loss.backward()
        distributed.average_gradients(p for group in optimizer.param_groups for p in group["params"])
        optimizer.step()


def autocast_dtype(settings: TrainSettings, device: torch.device) -> torch.dtype | None:
    """The mixed-precision type of training on ``device``: None (full precision), bfloat16 or float16.

    ``amp`` off or not CUDA: None. ``amp_dtype`` ``auto``: bfloat16 where the GPU supports it
    (it keeps float32's range, so no loss scaling), else float16.
    """
    if not settings.amp or device.type != "cuda":
        return None
    choice = settings.amp_dtype
    if choice == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return getattr(torch, choice)


def prepare_model(model: nn.Module, settings: TrainSettings, device: torch.device) -> nn.Module:
    """Move ``model`` to ``device``; on CUDA also channels-last and compiled when the settings ask.

    Compiling works in place (``nn.Module.compile``), so parameter names, checkpoints and the
    model file stay those of the plain model.
    """
    model.to(device)
    if device.type == "cuda" and settings.channels_last:
        model.to(memory_format=torch.channels_last)
    if device.type == "cuda" and settings.compile:
        model.compile()
    return model


def train(
    model: nn.Module,
    step_fn: TrainingStep | StepFn,
    settings: TrainSettings,
    work_dir: str | Path,
    identity: Any,
    device: torch.device,
    desc: str = "train",
    progress: bool = True,
    extra_state: dict[str, Any] | None = None,
    data_workers: int = 0,
    validate: Callable[[nn.Module], dict[str, float]] | None = None,
) -> TrainResult:
    """Train ``model`` for ``settings.steps`` steps of ``step_fn``.

    step_fn: a :class:`TrainingStep` (or a plain ``step_fn(model, rng, step)``). work_dir: folder
    for ``checkpoint.pt`` and ``metrics.csv`` (not a workflow output, so a crashed job keeps it).
    identity: everything that defines the run (its config sections and inputs); a checkpoint made
    under another identity is not resumed. extra_state: further training state besides the model
    (a teacher network, a class prior), as objects with ``state_dict()`` / ``load_state_dict()``;
    checkpointed and restored with the model. data_workers: processes preparing batches ahead
    (0: in this process; capped at the usable CPUs minus one). validate: scores of the model on
    held-out images (:mod:`~selfpanoptic.train.validation`), run every ``validate_every`` steps.
    """
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    workers = max(0, min(data_workers, usable_cpus() - 1))
    with _work_dir_lock(work_dir, desc) if distributed.is_main() else contextlib.nullcontext():
        return _train(model, as_training_step(step_fn), settings, work_dir, identity, device, desc, progress,
                      extra_state, workers, validate)


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


def _host_values(loss: torch.Tensor, parts: dict[str, Any]) -> tuple[float, dict[str, float]]:
    """The loss and its parts as floats, read from the device in one transfer (one synchronisation)."""
    tensors = {k: v for k, v in parts.items() if isinstance(v, torch.Tensor)}
    values = distributed.mean_over_ranks(torch.stack([
        loss.detach().float().reshape(()), *(v.detach().float().reshape(()).to(loss.device) for v in tensors.values())
    ])).tolist()
    read = dict(zip(tensors, values[1:]))
    return values[0], {k: read[k] if k in read else float(v) for k, v in parts.items()}


def _train(model, step: TrainingStep, settings, work_dir: Path, identity, device, desc, progress, extra_state,
           workers: int, validate) -> TrainResult:
    """The body of :func:`train`, under the work folder's lock; ``workers`` already capped."""
    checkpoint_path = work_dir / "checkpoint.pt"
    log_path = work_dir / "metrics.csv"
    run_hash = config_hash(identity)
    total = settings.steps
    optimizer, scaler, amp_dtype, start = _ready(model, settings, device, checkpoint_path, log_path, run_hash,
                                                 extra_state, desc)
    main = distributed.is_main()
    model.train()
    began, images_seen, ranks = time.perf_counter(), 0, distributed.world_size()
    bar = tqdm(total=total, initial=start, desc=desc, disable=not (progress and main), unit="step")
    batches = prepared_batches(step, settings.seed, start, total, workers, pin_memory=device.type == "cuda")
    validate_every = settings.validate_every if validate is not None else 0
    board = TrainingBoard(work_dir / "tensorboard" if main else None, settings.tensorboard, settings.log_images_every,
                          start)
    with open(log_path if main else os.devnull, "a", newline="") as log_file, board:
        metrics = _MetricsLog(log_file, resumed=start > 0)
        waited = time.perf_counter()
        for index, batch, rng in batches:
            data_seconds = time.perf_counter() - waited
            _set_learning_rate(optimizer, settings, index, total)
            step_rng(settings.seed, index)  # torch's and Python's RNG; numpy's comes with the batch
            tick = time.perf_counter()
            loss_value, parts, batch_images, visualise = _compute_and_step(
                model, step, distributed.shard(batch), rng, index, optimizer, scaler, device, amp_dtype, desc)
            batch_images *= ranks
            elapsed = time.perf_counter() - tick
            images_seen += batch_images
            row = {"step": index + 1, "loss": loss_value, **parts, "lr": optimizer.param_groups[0]["lr"],
                   "images_per_s": batch_images / max(elapsed + data_seconds, 1e-9), "data_s": data_seconds}
            metrics.write(row)
            board.log(row)
            bar.set_postfix(loss=f"{loss_value:.3f}", img_s=rate_text(row["images_per_s"]))
            bar.update(1)
            done = index + 1
            if visualise and main and board.wants_images(done):
                board.images(visualise[0](), done)
            del visualise  # it holds the step's tensors
            if validate_every and main and done % validate_every == 0:
                _validate(model, validate, board, bar, done, desc)
            if done % settings.checkpoint_every == 0 and done < total:
                _check_ranks_agree(model, optimizer, extra_state, desc, done)
                log_file.flush()
                board.flush()
                if main:
                    save_checkpoint(checkpoint_path, model, optimizer, done, run_hash, scaler, extra_state)
            waited = time.perf_counter()
    bar.close()
    _check_ranks_agree(model, optimizer, extra_state, desc, total)
    _check_finite_weights(model, desc, total)
    seconds = time.perf_counter() - began
    return TrainResult(total, start, seconds, images_seen / max(seconds, 1e-9))


def _ready(model: nn.Module, settings, device: torch.device, checkpoint_path: Path, log_path: Path, run_hash: str,
           extra_state, desc: str):
    """Put the model on its device, build its optimizer and loss scaler, resume from a checkpoint of
    the same run, and cut the step log back to the step resumed from; (optimizer, scaler or None,
    autocast dtype or None, first step)."""
    prepare_model(model, settings, device)
    convert_for_data_parallel(model, device)
    optimizer = build_optimizer(model, settings)
    amp_dtype = autocast_dtype(settings, device)
    scaler = torch.amp.GradScaler("cuda") if amp_dtype == torch.float16 else None
    start = resume(checkpoint_path, run_hash, model, optimizer, scaler, extra_state, desc, settings.steps)
    if distributed.is_main() and start == 0:
        log_path.unlink(missing_ok=True)
    elif distributed.is_main():
        truncate_log(log_path, start)
    return optimizer, scaler, amp_dtype, start


def _check_ranks_agree(model: nn.Module, optimizer: torch.optim.Optimizer, extra_state: dict[str, Any] | None,
                       desc: str, step: int) -> None:
    """In a data-parallel job: stop unless every rank holds the same model, optimiser and extra
    state (teacher, prior, discriminator) after ``step`` steps."""
    states = {"model": model.state_dict(), "optimizer": optimizer.state_dict()["state"],
              **{name: obj.state_dict() for name, obj in (extra_state or {}).items()}}
    distributed.check_same_state(states, desc, step)


def _set_learning_rate(optimizer: torch.optim.Optimizer, settings: TrainSettings, index: int, total: int) -> None:
    """Set every parameter group's learning rate for step ``index`` of ``total``.

    Each group's ``initial_lr`` times :func:`learning_rate_factor` (schedule, ``poly_power``,
    ``warmup_steps``, ``warmup_ratio`` of ``settings``). Computed from the step alone, never from
    the previous rate, so a resumed run sets the very rates of an uninterrupted one.
    """
    factor = learning_rate_factor(settings.schedule, index, total, settings.poly_power, settings.warmup_steps,
                                  settings.warmup_ratio)
    for group in optimizer.param_groups:
        group["lr"] = group["initial_lr"] * factor


def _compute_and_step(model: nn.Module, step: TrainingStep, batch: Any, rng: np.random.Generator, index: int,
                      optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler | None, device: torch.device,
                      amp_dtype: torch.dtype | None, desc: str
                      ) -> tuple[float, dict[str, float], int, list[Callable[[], dict[str, torch.Tensor]]]]:
    """Run the model half of step ``index`` and update the weights.

    Returns the loss and its parts as floats, the number of images in the batch, and what
    ``compute`` returned after them: ``[visualise]``, or ``[]`` when it offers none. Raises
    :class:`NonFiniteLossError` before any update when the loss is NaN or infinite.
    """
    with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
        loss, parts, batch_images, *visualise = step.compute(model, batch, rng, index)
    loss_value, parts = _host_values(loss, parts)
    if not math.isfinite(loss_value):
        raise NonFiniteLossError(
            f"{desc}: the loss became {loss_value} at step {index} (parts: {parts}); "
            "lower the learning rate or check the inputs"
        )
    try:
        optimizer_step(loss, optimizer, scaler)
    except RuntimeError as exc:
        # Adam's step size lr / (1 - beta1^t) can exceed float32 before any weight is touched
        if "overflow" not in str(exc):
            raise
        raise NonFiniteLossError(
            f"{desc}: the weight update overflowed at step {index} (learning rate "
            f"{optimizer.param_groups[0]['lr']:.3g}: {exc}); lower the learning rate"
        ) from None
    return loss_value, parts, batch_images, visualise


def _check_finite_weights(model: nn.Module, desc: str, steps: int) -> None:
    """Raise :class:`NonFiniteLossError` if the last update left a weight NaN or infinite (no later
    loss would show it, and the model file must not hold it)."""
    bad = [name for name, tensor in model.state_dict().items()
           if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all())]
    if bad:
        raise NonFiniteLossError(
            f"{desc}: after step {steps} the weights are NaN or infinite ({', '.join(bad[:3])}"
            f"{' ...' if len(bad) > 3 else ''}); lower the learning rate or check the inputs"
        )


class _MetricsLog:
    """``metrics.csv``: one row per step, the header (the first row's keys) unless continuing a resumed log."""

    def __init__(self, handle, resumed: bool) -> None:
        self._handle, self._resumed = handle, resumed
        self._writer: csv.DictWriter | None = None

    def write(self, row: dict[str, Any]) -> None:
        if self._writer is None:
            self._writer = csv.DictWriter(self._handle, fieldnames=list(row))
            if not self._resumed or self._handle.tell() == 0:
                self._writer.writeheader()
        self._writer.writerow(row)


def _validate(model: nn.Module, validate: Callable[[nn.Module], dict[str, float]], board: TrainingBoard, bar: tqdm,
              done: int, desc: str) -> None:
    """Score the model after ``done`` steps; log the scores to TensorBoard and print them."""
    scores = validate(model)
    board.validation(scores, done)
    bar.write(f"{desc}: step {done} validation: " + ", ".join(f"{k} {v:.4g}" for k, v in scores.items()))
    sys.stdout.flush()


def save_model_file(path: str | Path, model: nn.Module, kind: str, spec: dict[str, Any], working_size: tuple[int, int],
                    extra: dict[str, Any] | None = None) -> None:
    """Write the trained model (weights + the model spec to rebuild it) atomically; in a
    data-parallel job rank 0 writes it.

    ``working_size``: (height, width) in pixels of the images it was trained on, the cache's
    size, so that a prediction on new images resizes them the same way (``predict-panoptic``).
    """
    state = {"kind": kind, "spec": spec, "working_size": [int(working_size[0]), int(working_size[1])],
             "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}}
    state.update(extra or {})
    if not distributed.is_main():
        return
    with atomic_output(path) as tmp:
        torch.save(state, tmp)


def finish(work_dir: str | Path) -> None:
    """Remove the checkpoint once the final model is written, so a later rerun starts fresh (rank 0)."""
    if distributed.is_main():
        (Path(work_dir) / "checkpoint.pt").unlink(missing_ok=True)
