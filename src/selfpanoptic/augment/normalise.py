"""Images as network input: uint8 ``(B, H, W, 3)`` arrays to float ``(B, 3, H, W)`` tensors, ImageNet-normalised."""

from __future__ import annotations

import numpy as np
import torch

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def normalise(images: np.ndarray) -> torch.Tensor:
    """uint8 (B, H, W, 3) -> float32 (B, 3, H, W), ImageNet mean/std normalised."""
    x = (images.astype(np.float32) / 255.0 - IMAGENET_MEAN) / IMAGENET_STD
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))


def _mean_std(like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """ImageNet mean and std as (1, 3, 1, 1) tensors on ``like``'s device and dtype."""
    mean = torch.as_tensor(IMAGENET_MEAN, dtype=like.dtype, device=like.device).view(1, 3, 1, 1)
    std = torch.as_tensor(IMAGENET_STD, dtype=like.dtype, device=like.device).view(1, 3, 1, 1)
    return mean, std


def normalise_unit(images: torch.Tensor) -> torch.Tensor:
    """float (B, 3, H, W) in [0, 1] -> ImageNet mean/std normalised, same device and dtype."""
    mean, std = _mean_std(images)
    return (images - mean) / std


def to_unit(images: np.ndarray) -> torch.Tensor:
    """uint8 (B, H, W, 3) -> float32 (B, 3, H, W) in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2))).float() / 255.0


def denormalise(images: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`normalise_unit`: normalised (B, 3, H, W) -> [0, 1], same device and dtype."""
    mean, std = _mean_std(images)
    return (images * std + mean).clamp(0.0, 1.0)
