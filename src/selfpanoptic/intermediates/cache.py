"""The dataset cache: a dataset (or the mixed source) at the working resolution, read by training.

Layout (N images of H x W): ``images`` (N, H, W, 3) uint8 RGB; ``labels`` (N, H, W) uint8
trainIds, 255 = ignore; ``instances`` (N, H, W) int32, 0 = none; optionally ``inverse_depth``
(N, H, W) float32 inverse depth in 1/m, NaN = unknown (present only when at least one sample
had a depth file; rows of samples without one are all NaN); ``image_ids`` and ``datasets``
(N,) strings (which sample of which dataset each row is). The root attribute ``labelled``
is False for an unlabelled split (no label files: ``labels`` all ignore, ``instances`` all 0);
caches written before it existed read as labelled. One image per chunk, so reading a
random image touches one chunk; chunks are compressed as the config's ``data.compression`` says
(lzf, gzip or none), which h5py undoes transparently, so caches of any setting read the same.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from ..classes import IGNORE
from ..h5io import read_strings
from .base import Intermediate


class DatasetCache(Intermediate):
    """Read access to a dataset cache, one image per :meth:`read`.

    Caches under ``preload_mb`` (estimated at 8 bytes a pixel, 12 with depth) are read into
    memory once when opened; larger ones are read per image.
    """

    STAGE = "dataset_cache"
    KIND = "dataset cache"
    FIX = "rebuild the cache from the same manifest (rerun the cache_dataset rule)"
    STACKS = {
        "images": (np.uint8, "RGB image"),
        "labels": (np.uint8, f"trainIds, {IGNORE} = ignore"),
        "instances": (np.int32, "instance ids, 0 = none"),
        "inverse_depth": (np.float32, "inverse depth in 1/m, NaN = unknown"),
    }
    OPTIONAL_STACKS = ("inverse_depth",)
    """Stacks a cache may lack: ``inverse_depth`` only exists when some sample had depth data."""

    def __init__(self, h5: h5py.File, path: str | Path, preload_mb: float = 1024):
        super().__init__(h5, path)
        self.count, self.height, self.width = h5["labels"].shape
        self.datasets = read_strings(h5, "datasets") if "datasets" in h5 else []
        self._memory = None
        stacks = [key for key in self.STACKS if key in h5]
        bytes_per_pixel = 8 + (4 if "inverse_depth" in stacks else 0)
        if self.count * self.height * self.width * bytes_per_pixel / 2**20 <= preload_mb:
            self._memory = {key: h5[key][()] for key in stacks}

    def reopen(self) -> None:
        """Give this process its own HDF5 handle (:meth:`.Intermediate.reopen`); a preloaded cache needs none."""
        if self._memory is None:
            super().reopen()

    @property
    def labelled(self) -> bool:
        """Whether the cache's labels come from label files (False: an unlabelled split, all ignore)."""
        return bool(self.h5.attrs.get("labelled", True))

    @property
    def has_depth(self) -> bool:
        """Whether the cache holds an ``inverse_depth`` stack (some of its samples had depth files)."""
        return "inverse_depth" in self.h5

    def read_inverse_depth(self, index: int) -> np.ndarray:
        """One image's inverse depth (H, W) float32 in 1/m; all NaN (unknown) in a cache without depth."""
        if not self.has_depth:
            return np.full((self.height, self.width), np.nan, dtype=np.float32)
        return self.read("inverse_depth", index)

    def read(self, key: str, index: int) -> np.ndarray:
        """One image's array of stack ``key``.

        Parameters
        ----------
        key:
            ``images`` (H, W, 3) uint8, ``labels`` (H, W) uint8, ``instances`` (H, W) int32, or
            ``inverse_depth`` (H, W) float32 in 1/m, NaN = unknown (only when :attr:`has_depth`).
        index:
            The image's row.
        """
        if self._memory is not None and key in self._memory:
            return self._memory[key][index]
        return self.h5[key][index]
