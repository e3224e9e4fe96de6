"""The ``pseudo-semantic`` stage's scratch file: each image's fused teacher softmax, kept from its
one forward pass until the split's class prior is known.

The labels of an image need the split's class prior (the mean fused softmax over all images), so
they can be made only after every image was forwarded. Rather than forwarding every view of every
image a second time, the forward pass stores here what the label step
(:func:`~selfpanoptic.pseudo.semantic.labels_from_fused`) reads of each image's fused map, one
image per HDF5 chunk, written and read per batch (never the split in memory), in one of two
layouts; both give labels bit-identical to a second forward's:

``all_classes`` (``selftrain.semantic.alignment`` > 0, the default): the alignment reweights every
    class by a factor that depends on the prior, so every class's probability is kept, as
    computed: ``fused`` ``(N, C, H, W)`` float32, ``C x H x W x 4`` bytes an image (19 classes:
    76 bytes a pixel; 38 MiB an image at 512 x 1024, 112 GiB for Cityscapes' 2,975 train images;
    152 MiB an image at 1024 x 2048; 0.6 MiB at the toy's 64 x 128). :data:`STORED_DTYPE` float16
    would halve that, but then a pixel within float16's rounding (2**-11 relative) of its class
    threshold or of a tie may be decided differently (measured on the toy: 68 of 1.6 M labels).
otherwise: the thresholds and labels read only each pixel's maximum and its class, so only those
    are kept: ``argmax`` ``(N, H, W)`` uint8 and ``confidence`` ``(N, H, W)`` float32, 5 bytes a pixel.

Both layouts add ``covered`` ``(N, H, W)`` bool (the pixels some view covers), 1 byte a pixel
(:func:`scratch_bytes`). The file lies next to the output under a fixed name
(:func:`scratch_path`), uncompressed (shuffled gzip saves only a quarter of noisy probabilities);
it is deleted when the stage ends, on success or on any Python exception. A killed run leaves it,
and the next run of the same output deletes it before anything else (its space counts as free).
A disk without room for it is refused before the forward pass.
"""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path
from typing import Iterator

import h5py
import numpy as np
import torch

from ..errors import InputError
from ..h5io import create_stack

STORED_DTYPE = np.float32
"""Of the fused probabilities in the ``all_classes`` layout: float32 keeps the labels exact
(``np.float16``: half the disk, a few labels differ; see the module text)."""


def scratch_path(out: str | Path) -> Path:
    """``dir/name.tmp-fused.h5`` beside the output ``dir/name.h5``: ``.tmp-`` marks it unfinished
    (as the atomic writers' temporaries), and a fixed name lets a rerun replace a killed run's."""
    out = Path(out)
    return out.with_name(f"{out.stem}.tmp-fused{out.suffix}")


def scratch_bytes(count: int, classes: int, shape: tuple[int, int], all_classes: bool) -> int:
    """Bytes of the scratch file's data for ``count`` images of ``shape`` ``(H, W)`` with ``classes`` C:
    ``(C x itemsize + 1)`` a pixel with ``all_classes``, else 6 (uint8 class, float32 maximum, bool covered)."""
    per_pixel = classes * np.dtype(STORED_DTYPE).itemsize + 1 if all_classes else 6
    return count * shape[0] * shape[1] * per_pixel


def _size(count: int) -> str:
    return f"{count / 2**30:.1f} GiB" if count >= 2**30 else f"{count / 2**20:.1f} MiB"


class FusedStore:
    """Per-image fused softmax of a split in a scratch HDF5 file (see the module text).

    Made by :meth:`create`; :meth:`write` during the forward pass, :meth:`read` afterwards.
    """

    def __init__(self, h5: h5py.File, all_classes: bool, classes: int):
        self.h5, self.all_classes, self.classes = h5, all_classes, classes

    @classmethod
    @contextlib.contextmanager
    def create(cls, out: str | Path, count: int, classes: int, shape: tuple[int, int],
               all_classes: bool) -> Iterator[FusedStore]:
        """Open a new scratch file for the output ``out`` (replacing a stale one); deleted on exit.

        ``count`` images of ``shape`` ``(H, W)``; ``classes``: ``C``; ``all_classes``: keep every
        class's probability or only each pixel's maximum and its class. Raises
        :class:`~selfpanoptic.errors.InputError` when the output's disk has no room for it.
        """
        path = scratch_path(out)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)  # a killed run's: its space counts as free
        need, free = scratch_bytes(count, classes, shape, all_classes), shutil.disk_usage(path.parent).free
        if need > free:
            raise InputError(f"the stage's scratch file needs {_size(need)} beside the output, but only {_size(free)} "
                             "are free", path.parent, "free disk space, or write --out elsewhere")
        h5 = h5py.File(path, "w")
        try:
            stacks = {"fused": ((classes, *shape), STORED_DTYPE)} if all_classes else \
                {"argmax": (shape, np.uint8), "confidence": (shape, np.float32)}
            for name, (item, dtype) in {**stacks, "covered": (shape, np.bool_)}.items():
                create_stack(h5, name, count, item, dtype, compression="none")
            yield cls(h5, all_classes, classes)
        finally:
            h5.close()
            path.unlink(missing_ok=True)

    def write(self, rows: slice, fused: torch.Tensor, covered: torch.Tensor) -> None:
        """Store images ``rows``: ``fused`` ``(B, C, H, W)`` float32 views' mean softmax,
        ``covered`` ``(B, 1, H, W)`` bool (as from :func:`~selfpanoptic.augment.views.warp_to_reference`)."""
        if self.all_classes:
            self.h5["fused"][rows] = fused.cpu().numpy().astype(STORED_DTYPE, copy=False)
        else:
            confidence, argmax = fused.max(dim=1)  # the maximum and its class as the label step finds them
            self.h5["argmax"][rows] = argmax.cpu().numpy().astype(np.uint8)
            self.h5["confidence"][rows] = confidence.cpu().numpy()
        self.h5["covered"][rows] = covered[:, 0].cpu().numpy()

    def read(self, rows: slice, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """Images ``rows`` as the label step takes them: ``(fused (B, C, H, W) float32, covered (B, 1, H, W) bool)``.

        In the maxima layout ``fused`` holds each pixel's maximum at its class and 0 elsewhere:
        its maxima and their classes (ties included: the stored class is now the only maximum),
        and so every threshold, label, argmax and confidence, are the full map's when nothing
        reweights the classes.
        """
        covered = torch.from_numpy(self.h5["covered"][rows]).to(device).unsqueeze(1)
        if self.all_classes:
            return torch.from_numpy(self.h5["fused"][rows]).to(device).float(), covered
        argmax = torch.from_numpy(self.h5["argmax"][rows].astype(np.int64)).to(device).unsqueeze(1)
        confidence = torch.from_numpy(self.h5["confidence"][rows]).to(device).unsqueeze(1)
        fused = torch.zeros((len(argmax), self.classes, *argmax.shape[2:]), dtype=torch.float32, device=device)
        return fused.scatter_(1, argmax, confidence), covered
