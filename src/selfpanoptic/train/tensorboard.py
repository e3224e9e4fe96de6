"""The TensorBoard writer of a training run: ``<work_dir>/tensorboard/``.

:class:`TrainingBoard` writes every log row of the engine (the dict that also becomes a line
of ``metrics.csv``) as scalars at the row's step, pictures of a step every ``log_images_every``
steps (:mod:`selfpanoptic.train.visuals`) and the validation scores. Tags:

- ``loss/total`` and ``loss/<part>`` for the loss parts of the step (``ce``, ``target``,
  ``source``, ``spoco``, ``dice``, ``consistency``, ``generation``, ...);
- ``lr``, ``throughput/images_per_s``, ``throughput/data_s``;
- ``pseudo/kept`` (share of view pixels given a pseudo-label), ``pseudo/instances_per_image``;
- ``schedule/alpha`` (self-correction), ``schedule/beta`` (co-learning);
- ``images/<name>`` (input, prediction, label or pseudo_label, embedding, instances);
- ``val/<name>`` (``mIoU``, ``mIoU16``; ``spoco``, ``dice`` of instance models).

A fresh run (step 0) removes the events of an earlier run in the folder. A resumed run opens
the writer with ``purge_step``: TensorBoard then drops the events written after the checkpoint
by the killed run, so the curves show every step once, as ``metrics.csv`` does. ``tensorboard:
false`` turns the writer off (every method does nothing). The writer (and its writing thread)
starts with the first event, after the engine's batch-preparing workers have been forked.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path
from typing import Any

import torch

TAGS = {
    "loss": "loss/total", "lr": "lr", "images_per_s": "throughput/images_per_s", "data_s": "throughput/data_s",
    "kept": "pseudo/kept", "pseudo_per_image": "pseudo/instances_per_image",
    "alpha": "schedule/alpha", "beta": "schedule/beta",
}
"""Tag of each log-row key that is not a loss part; every other numeric key is ``loss/<key>``."""


def scalar_tag(key: str) -> str:
    """The TensorBoard tag of a log-row key."""
    return TAGS.get(key, f"loss/{key}")


class TrainingBoard:
    """TensorBoard events of one training run, in ``folder``; a context manager that closes them.

    ``enabled``: write events at all; ``images_every``: steps between image grids (0: none);
    ``start``: the step training starts from (0, or the resumed checkpoint's step). ``folder``
    None: a board that writes and removes nothing (the other ranks of a data-parallel job).
    """

    def __init__(self, folder: str | Path | None, enabled: bool, images_every: int, start: int):
        self.folder = Path(folder) if folder is not None else None
        self.enabled = enabled and folder is not None
        self.images_every = images_every
        # the rows of steps 1..start came before the checkpoint and stay; later ones are purged
        self.purge_step = start + 1 if start else None
        self.writer = None
        if start == 0 and self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)

    def _write(self):
        """The SummaryWriter, started on first use; None when TensorBoard is off."""
        if self.enabled and self.writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(self.folder), purge_step=self.purge_step, flush_secs=10)
        return self.writer

    def log(self, row: dict[str, Any]) -> None:
        """The numeric values of a log row, at the row's ``step``."""
        if (writer := self._write()) is None:
            return
        step = int(row["step"])
        for key, value in row.items():
            if key != "step" and isinstance(value, (int, float)) and not isinstance(value, bool):
                writer.add_scalar(scalar_tag(key), value, step)

    def wants_images(self, step: int) -> bool:
        """Whether the step numbered ``step`` (1-based, as the log row's) logs pictures."""
        return self.enabled and self.images_every > 0 and step % self.images_every == 0

    def images(self, pictures: dict[str, torch.Tensor], step: int) -> None:
        """``{name: (N, 3, H, W) in [0, 1]}`` as ``images/<name>`` at ``step``."""
        if (writer := self._write()) is None:
            return
        for name, batch in pictures.items():
            writer.add_images(f"images/{name}", batch, step, dataformats="NCHW")

    def validation(self, scores: dict[str, float], step: int) -> None:
        """Validation scores as ``val/<name>`` at ``step`` (NaN scores, e.g. no class present, are left out)."""
        if (writer := self._write()) is None:
            return
        for name, value in scores.items():
            if math.isfinite(value):
                writer.add_scalar(f"val/{name}", value, step)

    def flush(self) -> None:
        """Write out the pending events (before a checkpoint, so a killed run loses none of its steps)."""
        if self.writer is not None:
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    def __enter__(self) -> "TrainingBoard":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
