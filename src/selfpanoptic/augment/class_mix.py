"""Cross-domain mixing (DACS's ClassMix): labelled source pixels pasted onto target images.

A mask picks half of the classes (or instances) of a labelled source crop; inside it the mixed
image shows the source crop and is trained on the source's labels (weight 1, they are true),
outside it the target image keeps its pseudo-labels and their confidence weights. The student
thereby sees target context around correctly labelled objects, which is what lets rare classes and
class boundaries transfer in DACS and DAFormer.

The masks are drawn on the host from ``rng`` (part of a step's ``prepare``, so resumed and
data-parallel runs draw the same ones); the pasting itself runs on the model's device.
"""

from __future__ import annotations

import numpy as np
import torch

from ..classes import IGNORE

__all__ = ["half_of_ids", "paste"]


def half_of_ids(ids: np.ndarray, rng: np.random.Generator, exclude: tuple[int, ...] = (IGNORE,)) -> np.ndarray:
    """Masks of a random half of the ids present in each map: ``(N, H, W)`` int -> ``(N, H, W)`` bool.

    For each map the distinct values not in ``exclude`` are listed in ascending order and
    ``ceil(n / 2)`` of them are drawn without replacement (one ``rng.permutation`` per map, even
    when the map holds none); the mask is True where the map holds a drawn value. Used with
    semantic labels (``exclude``: the ignore label, ClassMix) and with instance ids (``exclude``:
    ``(0,)``, the background).
    """
    ids = np.asarray(ids)
    if ids.ndim != 3:
        raise ValueError(f"ids must be (N, H, W), got shape {ids.shape}")
    masks = np.zeros(ids.shape, dtype=bool)
    for n, image in enumerate(ids):
        present = np.setdiff1d(np.unique(image), np.asarray(exclude, dtype=image.dtype))
        order = rng.permutation(len(present))
        chosen = present[order[: (len(present) + 1) // 2]]
        masks[n] = np.isin(image, chosen)
    return masks


def paste(mask: torch.Tensor, source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``source`` where ``mask``, else ``target``.

    ``mask``: ``(N, H, W)`` bool; ``source``, ``target``: ``(N, H, W)`` or ``(N, C, H, W)`` of one
    dtype (images, labels, weights, instance ids); the mask is broadcast over the channels.
    """
    if mask.dtype != torch.bool or mask.dim() != 3:
        raise ValueError(f"mask must be (N, H, W) bool, got {tuple(mask.shape)} {mask.dtype}")
    if source.shape != target.shape or source.shape[0] != mask.shape[0] or source.shape[-2:] != mask.shape[-2:]:
        raise ValueError(f"source {tuple(source.shape)}, target {tuple(target.shape)} and mask "
                         f"{tuple(mask.shape)} must share (N, ..., H, W)")
    if source.dim() == 4:
        mask = mask.unsqueeze(1)
    return torch.where(mask, source, target)
