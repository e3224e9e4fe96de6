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
from ..segments import instance_majority_classes

__all__ = ["refine_with_instances", "sample_instances"]


def refine_with_instances(labels, instances):
    """Lay instance masks over a semantic pseudo-label: each instance takes its majority class.

    ``labels``: ``(H, W)`` class ids (uint8 or int64, numpy or torch) with 255 = ignore;
    ``instances``: ``(H, W)`` int instance ids, 0 = no instance. Every pixel of an instance,
    ignored ones included, is set to the class that most of the instance's non-ignored pixels
    carry (ties to the smaller class id; :func:`selfpanoptic.segments.instance_majority_classes`).
    Instances without any labelled pixel, and pixels outside instances, are left alone. Returns a
    new array of the same type, dtype and device as ``labels``.
    """
    is_torch = isinstance(labels, torch.Tensor)
    lab = labels.detach().cpu().numpy() if is_torch else np.asarray(labels)
    inst = instances.detach().cpu().numpy() if isinstance(instances, torch.Tensor) else np.asarray(instances)
    if lab.shape != inst.shape or lab.ndim != 2:
        raise ValueError(f"labels and instances must be the same (H, W), got {lab.shape} and {inst.shape}")
    if lab.size and (lab.min() < 0 or lab.max() > 255):
        raise ValueError("labels must lie in 0..255")
    ids, classes = instance_majority_classes(lab.astype(np.uint8), inst)
    refined = lab.copy()
    keep = classes != IGNORE
    if keep.any():
        lut_ids, lut_classes = ids[keep], classes[keep]  # ids are > 0
        hit = np.isin(inst, lut_ids)
        refined[hit] = map_array(inst[hit], lut_ids, lut_classes).astype(refined.dtype)
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
