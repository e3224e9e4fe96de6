"""Pictures of a training step for TensorBoard: inputs, label maps, instance maps, embeddings.

A step's ``compute`` may return, after ``(loss, parts, images)``, a fourth element: a callable
``visualise() -> {name: (N, 3, H, W) float tensor in [0, 1]}`` that the engine calls only on
the steps that log images (``log_images_every``). It closes over tensors the step already has,
so the other steps pay nothing; the functions here turn those tensors into pictures. None of
them draws a random number (the engine's runs must not change when images are logged), and
each keeps only the first :data:`MAX_IMAGES` images of a batch.
"""

from __future__ import annotations

from typing import Callable

import torch

from ..augment.normalise import denormalise
from ..colours import TRAIN_ID_COLOURS

MAX_IMAGES = 4
"""Images per tag and logging step."""

Visualise = Callable[[], dict[str, torch.Tensor]]


def _first(x: torch.Tensor) -> torch.Tensor:
    return x[:MAX_IMAGES].detach().cpu()


@torch.no_grad()
def unit_images(images: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) images in [0, 1] -> the first ones as float32 on the CPU."""
    return _first(images).float().clamp(0.0, 1.0)


@torch.no_grad()
def normalised_images(images: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) ImageNet-normalised network input -> the first ones in [0, 1]."""
    return unit_images(denormalise(_first(images).float()))


@torch.no_grad()
def label_images(labels: torch.Tensor) -> torch.Tensor:
    """(B, H, W) trainIds (255 = ignore, black) -> the first ones in Cityscapes colours, (N, 3, H, W) in [0, 1]."""
    labels = _first(torch.as_tensor(labels)).long().clamp(0, 255)
    colours = torch.from_numpy(TRAIN_ID_COLOURS).float() / 255.0
    return colours[labels].permute(0, 3, 1, 2).contiguous()


@torch.no_grad()
def instance_images(instances: torch.Tensor) -> torch.Tensor:
    """(B, H, W) instance ids (0 = none, black) -> the first ones with a fixed colour per id, (N, 3, H, W)."""
    ids = _first(torch.as_tensor(instances)).long()
    # a fixed, well-spread colour per id (no random draws): multiples of coprime steps
    steps = torch.tensor([97, 53, 193])
    colours = ((ids[..., None] * steps) % 200 + 55).float() / 255.0
    colours[ids == 0] = 0.0
    return colours.permute(0, 3, 1, 2).contiguous()


@torch.no_grad()
def embedding_images(embeddings: torch.Tensor) -> torch.Tensor:
    """(B, D, H, W) pixel embeddings -> the first images' 3 principal components, each scaled to [0, 1].

    The components are those of each image's own pixels (an exact eigen-decomposition of the D x D
    covariance, no random projection); fewer than 3 dimensions are padded with black.
    """
    emb = _first(embeddings).double()
    count, dims, height, width = emb.shape
    out = torch.zeros(count, 3, height, width)
    for b in range(count):
        pixels = emb[b].reshape(dims, -1)
        centred = pixels - pixels.mean(dim=1, keepdim=True)
        _, vectors = torch.linalg.eigh(centred @ centred.T / max(centred.shape[1], 1))
        components = vectors[:, -3:].flip(1).T @ centred  # largest variance first
        low = components.min(dim=1, keepdim=True).values
        high = components.max(dim=1, keepdim=True).values
        scaled = (components - low) / (high - low).clamp_min(1e-12)
        out[b, : scaled.shape[0]] = scaled.reshape(-1, height, width).float()
    return out
