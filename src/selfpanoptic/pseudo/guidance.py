"""Instance guidance of semantic pseudo-labels (the thesis' addition to SAC).

:func:`refine_with_instances` lays instance masks over a semantic pseudo-label (each instance
takes its majority class); :func:`sample_instances` keeps a share of the ground-truth instances
for the ``gt_instance_fraction`` ablation. Kept apart from the thresholds because guidance is
optional and works on single numpy / torch label maps in the reference frame.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from skimage.util import map_array

from ..classes import IGNORE
from ..segments import instance_votes

__all__ = ["refine_with_instances", "sample_instances"]


def refine_with_instances(labels, instances, min_kept_share: float = 0.0, min_agreement: float = 0.0,
                          fill_ignored: bool = True):
    """Lay instance masks over a semantic pseudo-label: each trusted instance takes its majority class.

    ``labels``: ``(H, W)`` class ids (uint8 or int64, numpy or torch) with 255 = ignore;
    ``instances``: ``(H, W)`` int instance ids, 0 = no instance. An instance's majority class is
    the class most of its non-ignored ("kept") pixels carry (ties to the smaller class id). It is
    trusted when at least ``min_kept_share`` of its pixels are kept and at least
    ``min_agreement`` of its kept pixels already carry the majority class. A trusted instance
    sets its kept pixels to the majority class and, with ``fill_ignored``, its ignored pixels too.
    Instances without any kept pixel, untrusted ones, and pixels outside instances are left
    alone. The defaults (0, 0, True) lay every instance over every one of its pixels. Returns a
    new array of the same type, dtype and device as ``labels``.

    Why the guards: a predicted instance that is mostly ignored, or whose kept pixels disagree,
    is a weak one; letting it relabel (or fill) pixels turns the thresholds' doubt into confident
    errors, which lowers the precision of thing pseudo-labels.
    """
    is_torch = isinstance(labels, torch.Tensor)
    lab = labels.detach().cpu().numpy() if is_torch else np.asarray(labels)
    inst = instances.detach().cpu().numpy() if isinstance(instances, torch.Tensor) else np.asarray(instances)
    if lab.shape != inst.shape or lab.ndim != 2:
        raise ValueError(f"labels and instances must be the same (H, W), got {lab.shape} and {inst.shape}")
    if lab.size and (lab.min() < 0 or lab.max() > 255):
        raise ValueError("labels must lie in 0..255")
    refined = lab.copy()
    if (inst > 0).any():
        ids, votes = instance_votes(lab.astype(np.uint8), inst)
        total = votes.sum(axis=1)
        ignored = votes[:, IGNORE].copy()
        votes[:, IGNORE] = 0
        classes = votes.argmax(axis=1)
        majority = votes[np.arange(len(ids)), classes]
        kept = total - ignored
        trusted = (majority > 0) & (kept >= min_kept_share * total) & (majority >= min_agreement * kept)
        if trusted.any():
            hit = np.isin(inst, ids[trusted])
            if not fill_ignored:
                hit &= lab != IGNORE
            refined[hit] = map_array(inst[hit], ids[trusted], classes[trusted]).astype(refined.dtype)
    if is_torch:
        return torch.from_numpy(refined).to(labels.device)
    return refined


def sample_instances(instances, fraction: float, rng: np.random.Generator):
    """Keep a random subset of the instances (the ``gt_instance_fraction`` ablation).

    ``instances``: ``(H, W)`` int ids, 0 = none (numpy or torch). Of the ``K`` distinct ids > 0,
    ``round(fraction * K)`` (halves rounded up) are chosen uniformly without replacement with
    ``rng``; the pixels of the others are set to 0. Same type and dtype as the input.
    """
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must lie in [0, 1], got {fraction}")
    is_torch = isinstance(instances, torch.Tensor)
    inst = instances.detach().cpu().numpy() if is_torch else np.asarray(instances)
    ids = np.unique(inst[inst > 0])
    count = int(math.floor(fraction * len(ids) + 0.5))
    chosen = rng.choice(ids, size=count, replace=False) if count else ids[:0]
    kept = np.where(np.isin(inst, chosen), inst, 0).astype(inst.dtype)
    if is_torch:
        return torch.from_numpy(kept).to(instances.device)
    return kept
