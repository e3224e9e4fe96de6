"""Training batches from the HDF5 caches: random crops, flips, optional colour jitter.

Every draw takes a numpy Generator, so a step's batch is a function of (seed, step).
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import torch

from ..h5io import open_intermediate

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def normalise(images: np.ndarray) -> torch.Tensor:
    """uint8 (B, H, W, 3) -> float32 (B, 3, H, W), ImageNet mean/std normalised."""
    x = (images.astype(np.float32) / 255.0 - IMAGENET_MEAN) / IMAGENET_STD
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))


def normalise_unit(images: torch.Tensor) -> torch.Tensor:
    """float (B, 3, H, W) in [0, 1] -> ImageNet mean/std normalised, same device and dtype."""
    mean = torch.as_tensor(IMAGENET_MEAN, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
    std = torch.as_tensor(IMAGENET_STD, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
    return (images - mean) / std


def to_unit(images: np.ndarray) -> torch.Tensor:
    """uint8 (B, H, W, 3) -> float32 (B, 3, H, W) in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2))).float() / 255.0


class CachedImages:
    """Read access to a dataset cache (``images``, ``labels``, ``instances``), one image per read.

    Small caches (under ``preload_mb``) are read into memory once; larger ones are read per image.
    """

    def __init__(self, path: str | Path, preload_mb: float = 1024):
        self.path = Path(path)
        self._h5: h5py.File = open_intermediate(self.path)
        self.count, self.height, self.width = self._h5["labels"].shape
        self.image_ids = self._h5["image_ids"].asstr()[()]
        size_mb = self.count * self.height * self.width * 8 / 2**20
        self._memory = None
        if size_mb <= preload_mb:
            self._memory = {k: self._h5[k][()] for k in ("images", "labels", "instances")}

    def __len__(self) -> int:
        return self.count

    def read(self, key: str, index: int) -> np.ndarray:
        if self._memory is not None:
            return self._memory[key][index]
        return self._h5[key][index]

    def close(self) -> None:
        self._h5.close()


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


def colour_jitter(rng: np.random.Generator, image: np.ndarray, strength: float) -> np.ndarray:
    """Random brightness, contrast and per-channel gain of relative size ``strength`` (0 = off)."""
    if strength <= 0:
        return image
    x = image.astype(np.float32)
    brightness = 1 + rng.uniform(-strength, strength)
    contrast = 1 + rng.uniform(-strength, strength)
    gains = 1 + rng.uniform(-strength / 2, strength / 2, size=3)
    mean = x.mean()
    x = ((x - mean) * contrast + mean) * brightness * gains
    return np.clip(x, 0, 255).astype(np.uint8)


def sample_batch(
    cache: CachedImages, rng: np.random.Generator, indices: np.ndarray, batch_size: int,
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
