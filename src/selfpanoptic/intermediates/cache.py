"""The dataset cache: a dataset (or the mixed source) at the working resolution, read by training.

Layout (N images of H x W): ``images`` (N, H, W, 3) uint8 RGB; ``labels`` (N, H, W) uint8
trainIds, 255 = ignore; ``instances`` (N, H, W) int32, 0 = none; ``image_ids`` and ``datasets``
(N,) strings (which sample of which dataset each row is). One image per chunk, so reading a
random image touches one chunk.
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

    Caches under ``preload_mb`` (estimated at 8 bytes a pixel) are read into memory once when
    opened; larger ones are read per image.
    """

    STAGE = "dataset_cache"
    KIND = "dataset cache"
    FIX = "rebuild the cache from the same manifest (rerun the cache_dataset rule)"
    STACKS = {
        "images": (np.uint8, "RGB image"),
        "labels": (np.uint8, f"trainIds, {IGNORE} = ignore"),
        "instances": (np.int32, "instance ids, 0 = none"),
    }

    def __init__(self, h5: h5py.File, path: str | Path, preload_mb: float = 1024):
        super().__init__(h5, path)
        self.count, self.height, self.width = h5["labels"].shape
        self.datasets = read_strings(h5, "datasets") if "datasets" in h5 else []
        self._memory = None
        if self.count * self.height * self.width * 8 / 2**20 <= preload_mb:
            self._memory = {key: h5[key][()] for key in self.STACKS}

    def read(self, key: str, index: int) -> np.ndarray:
        """One image's ``images`` (H, W, 3), ``labels`` (H, W) or ``instances`` (H, W) array."""
        if self._memory is not None:
            return self._memory[key][index]
        return self.h5[key][index]
