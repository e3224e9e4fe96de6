"""Photometric augmentation: colour changes that leave the geometry (and so the labels) alone.

:func:`photometric_noise` is SAC's noise on the student's views (torch, ``[0, 1]`` images);
:func:`colour_jitter` is the lighter jitter of supervised training batches (numpy uint8 images).
Kept apart from the view geometry (:mod:`selfpanoptic.augment.views`) because pseudo-labels made
for the clean views still apply to the noisy ones.
"""

from __future__ import annotations

import math
from typing import Union

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["apply_photometric_noise", "colour_jitter", "draw_photometric_noise", "photometric_noise"]

Generator = Union[np.random.Generator, torch.Generator]

_LUMA = (0.299, 0.587, 0.114)


def _uniform(rng: Generator, low: float, high: float) -> float:
    if isinstance(rng, torch.Generator):
        return low + (high - low) * float(torch.rand((), generator=rng, dtype=torch.float64))
    return float(rng.uniform(low, high))


def _grey(image: torch.Tensor) -> torch.Tensor:
    r, g, b = image.unbind(dim=0)
    return (_LUMA[0] * r + _LUMA[1] * g + _LUMA[2] * b).unsqueeze(0)


def _gaussian_blur(image: torch.Tensor, sigma: float) -> torch.Tensor:
    radius = max(1, math.ceil(3.0 * sigma))
    x = torch.arange(-radius, radius + 1, dtype=image.dtype, device=image.device)
    kernel = torch.exp(-0.5 * (x / sigma) ** 2)
    kernel = kernel / kernel.sum()
    c = image.shape[0]
    batch = image.unsqueeze(0)
    batch = F.pad(batch, (radius, radius, 0, 0), mode="replicate")
    batch = F.conv2d(batch, kernel.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    batch = F.pad(batch, (0, 0, radius, radius), mode="replicate")
    batch = F.conv2d(batch, kernel.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)
    return batch.squeeze(0)


def draw_photometric_noise(
    count: int,
    rng: Generator,
    brightness: float = 0.4,
    contrast: float = 0.4,
    saturation: float = 0.4,
    grey_p: float = 0.2,
    blur_p: float = 1.0,
    sigma: tuple[float, float] = (0.1, 2.0),
) -> np.ndarray:
    """The random numbers of :func:`photometric_noise` for ``count`` images: ``(count, 6)`` float64.

    Per image, drawn from ``rng`` in this order: brightness factor, contrast factor, saturation
    factor, greyscale flag (0/1), blur flag (0/1), blur sigma in pixels. Drawing them apart from
    the images lets a data-loading worker draw them while the accelerator holds the images.
    """
    drawn = np.zeros((count, 6), dtype=np.float64)
    for row in drawn:
        row[0] = _uniform(rng, 1.0 - brightness, 1.0 + brightness)
        row[1] = _uniform(rng, 1.0 - contrast, 1.0 + contrast)
        row[2] = _uniform(rng, 1.0 - saturation, 1.0 + saturation)
        row[3] = _uniform(rng, 0.0, 1.0) < grey_p
        row[4] = _uniform(rng, 0.0, 1.0) < blur_p
        row[5] = _uniform(rng, sigma[0], sigma[1])
    return drawn


def apply_photometric_noise(images: torch.Tensor, drawn: np.ndarray) -> torch.Tensor:
    """Photometric noise with the numbers of :func:`draw_photometric_noise`; a new ``(N, 3, H, W)`` tensor.

    ``images``: float in ``[0, 1]``; ``drawn``: ``(N, 6)``. Colour jitter (brightness multiplies;
    contrast blends with the image's mean grey level; saturation blends with the grey image;
    clipped to ``[0, 1]`` after each, torchvision's definitions in a fixed order), then greyscale
    (luma 0.299 R + 0.587 G + 0.114 B in all channels) and gaussian blur (separable kernel of
    radius ``ceil(3 sigma)``, replicated borders) where flagged.
    """
    if images.dim() != 4 or images.shape[1] != 3 or not images.is_floating_point():
        raise ValueError(f"images must be float (N, 3, H, W), got {images.dtype} {tuple(images.shape)}")
    if len(drawn) != len(images):
        raise ValueError(f"noise drawn for {len(drawn)} images, but {len(images)} images given")
    out = []
    for image, (b, c, s, make_grey, do_blur, sig) in zip(images, drawn.tolist()):
        image = (image * b).clamp(0.0, 1.0)
        mean = _grey(image).mean()
        image = (mean + c * (image - mean)).clamp(0.0, 1.0)
        grey = _grey(image)
        image = (grey + s * (image - grey)).clamp(0.0, 1.0)
        if make_grey:
            image = _grey(image).expand(3, -1, -1).clone()
        if do_blur:
            image = _gaussian_blur(image, sig)
        out.append(image.clamp(0.0, 1.0))
    return torch.stack(out) if out else images.clone()


def photometric_noise(images: torch.Tensor, rng: Generator, *ranges, **named_ranges) -> torch.Tensor:
    """Random photometric noise for the student's input; returns a new ``(N, 3, H, W)`` tensor.

    ``images``: float in ``[0, 1]``. ``ranges`` / ``named_ranges``: ``brightness``, ``contrast``,
    ``saturation``, ``grey_p``, ``blur_p``, ``sigma`` as :func:`draw_photometric_noise` takes them
    (its defaults: SAC's). Per image, in this fixed order and drawing from ``rng`` (a
    ``numpy.random.Generator`` or ``torch.Generator``) in this order:

    1. colour jitter: brightness factor ``U(1 - brightness, 1 + brightness)`` (multiply), contrast
       factor ``U(1 - contrast, 1 + contrast)`` (blend with the image's mean grey level),
       saturation factor ``U(1 - saturation, 1 + saturation)`` (blend with the grey image);
       clipped to ``[0, 1]`` after each step (torchvision's definitions, fixed order);
    2. greyscale with probability ``grey_p`` (luma 0.299 R + 0.587 G + 0.114 B in all channels);
    3. gaussian blur with probability ``blur_p`` (SAC blurs every image, hence 1.0), sigma
       ``U(*sigma)`` pixels, separable kernel of radius ``ceil(3 sigma)``, replicated borders.

    The result stays in ``[0, 1]``; the same generator state gives the same output. Geometry is
    untouched, so pseudo-labels made for the clean views still apply. The same as
    :func:`apply_photometric_noise` of :func:`draw_photometric_noise`.
    """
    if images.dim() != 4 or images.shape[1] != 3 or not images.is_floating_point():
        raise ValueError(f"images must be float (N, 3, H, W), got {images.dtype} {tuple(images.shape)}")
    drawn = draw_photometric_noise(len(images), rng, *ranges, **named_ranges)
    return apply_photometric_noise(images, drawn)


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
