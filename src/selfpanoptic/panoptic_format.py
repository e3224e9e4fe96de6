"""The official Cityscapes panoptic PNG encoding: segment id = R + 256 G + 256^2 B."""

from __future__ import annotations

import numpy as np


def rgb_to_ids(rgb: np.ndarray) -> np.ndarray:
    """Segment ids ``R + 256 G + 256^2 B`` (int64, shape ``(H, W)``) of an ``(H, W, 3|4)`` image."""
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] < 3:
        raise ValueError(f"expected an (H, W, 3) RGB array, got shape {rgb.shape}")
    rgb = rgb.astype(np.int64, copy=False)
    return rgb[:, :, 0] + 256 * rgb[:, :, 1] + 65536 * rgb[:, :, 2]


def ids_to_rgb(ids: np.ndarray) -> np.ndarray:
    """Inverse of :func:`rgb_to_ids`: uint8 ``(H, W, 3)`` image of segment ids ``0 <= id < 2^24``."""
    ids = np.asarray(ids, dtype=np.int64)
    if ids.size and (ids.min() < 0 or ids.max() >= 1 << 24):
        raise ValueError("segment ids must lie in [0, 2^24) to be stored as RGB")
    rgb = np.empty(ids.shape + (3,), dtype=np.uint8)
    rgb[..., 0] = ids & 255
    rgb[..., 1] = (ids >> 8) & 255
    rgb[..., 2] = (ids >> 16) & 255
    return rgb
