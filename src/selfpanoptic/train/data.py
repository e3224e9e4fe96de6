"""Training batches from a dataset cache: random crops, flips, optional colour jitter.

Every draw takes a numpy Generator, so a step's batch is a function of (seed, step).
"""

from __future__ import annotations

import numpy as np
import torch

from ..augment.crops import random_crop_flip
from ..augment.normalise import normalise
from ..augment.photometric import colour_jitter
from ..intermediates import DatasetCache


def sample_batch(
    cache: DatasetCache, rng: np.random.Generator, indices: np.ndarray, batch_size: int,
    crop: tuple[int, int], hflip: bool = True, jitter: float = 0.0, shuffle: bool = True,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A random batch from ``indices`` of ``cache`` (``shuffle=False``: exactly ``indices``, in order).

    Returns images (B, 3, h, w) float32 normalised, labels (B, h, w) int64 (255 = ignore),
    instances (B, h, w) int64 (0 = none).
    """
    chosen = rng.choice(indices, size=batch_size, replace=len(indices) < batch_size) if shuffle else indices
    images, labels, instances = [], [], []
    for i in chosen:
        img, lab, inst = random_crop_flip(
            rng, [cache.read("images", i), cache.read("labels", i), cache.read("instances", i)], crop, hflip
        )
        images.append(colour_jitter(rng, img, jitter))
        labels.append(lab)
        instances.append(inst)
    return (
        normalise(np.stack(images)),
        torch.from_numpy(np.stack(labels).astype(np.int64)),
        torch.from_numpy(np.stack(instances).astype(np.int64)),
    )
