"""Random crops and flips of training samples (image, labels, instances cropped alike).

Used by supervised training batches and by both self-training loops; it lives here, with the
other augmentations, rather than next to the HDF5 cache reader.
"""

from __future__ import annotations

import numpy as np

__all__ = ["random_crop_flip"]


def random_crop_flip(
    rng: np.random.Generator, arrays: list[np.ndarray], crop: tuple[int, int], hflip: bool
) -> list[np.ndarray]:
    """Crop the same random window (crop = (h, w), clipped to the image) from each array, maybe flip."""
    height, width = arrays[0].shape[:2]
    ch, cw = min(crop[0], height), min(crop[1], width)
    top = int(rng.integers(0, height - ch + 1))
    left = int(rng.integers(0, width - cw + 1))
    flip = hflip and rng.random() < 0.5
    out = []
    for a in arrays:
        a = a[top : top + ch, left : left + cw]
        out.append(a[:, ::-1] if flip else a)
    return out
