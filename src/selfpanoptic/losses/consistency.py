"""Rotation consistency between the student and the EMA network (the thesis' SPOCO variant).

The EMA network sees the target crop rotated by a random angle; its embeddings are rotated back
(:func:`~selfpanoptic.augment.views.rotate_maps` with the inverse matrix) and compared with the
student's embeddings of the unrotated crop through soft masks around shared anchor pixels
(:func:`embedding_consistency_loss`). SPOCO's reference code computes this term but never adds it
to the loss; here it is added with its weight.

The rotation geometry (:func:`~selfpanoptic.augment.views.rotation_affines`,
:func:`~selfpanoptic.augment.views.rotate_maps`) lives with the other view geometry in
:mod:`selfpanoptic.augment.views`: ``affine_grid`` coordinates with ``align_corners=False``, a
2x3 matrix maps a point of the *output* to the point of the input it shows. This module holds the
loss only.
"""

from __future__ import annotations

import numpy as np
import torch

from .embedding import DELTA_V, soft_mask


def sample_anchors(valid: torch.Tensor, count: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Up to ``count`` distinct random flat pixel indices per image among the True pixels of ``valid`` ``(B, H, W)``."""
    anchors = []
    for mask in valid.reshape(valid.shape[0], -1).cpu().numpy():
        candidates = np.flatnonzero(mask)
        take = min(count, len(candidates))
        anchors.append(rng.choice(candidates, size=take, replace=False) if take else candidates[:0])
    return anchors


def embedding_consistency_loss(
    student: torch.Tensor,
    teacher: torch.Tensor,
    valid: torch.Tensor,
    anchors: list[np.ndarray],
    delta_v: float = DELTA_V,
    eps: float = 1e-6,
) -> torch.Tensor:
    """Mean Dice loss between the student's and the teacher's soft masks around shared anchor pixels.

    ``student``, ``teacher``: ``(B, D, H, W)`` embeddings of the same pixels (the teacher's
    already brought back to the student's frame; no gradient flows into it). ``valid``:
    ``(B, H, W)`` bool, the pixels both networks saw. ``anchors[b]``: flat pixel indices of image
    ``b`` (:func:`sample_anchors`). For anchor pixel ``a``, the student's mask is
    ``soft_mask(student, student[a])`` and the teacher's ``soft_mask(teacher, teacher[a])``,
    both over the valid pixels; the loss of the pair is ``1 - 2 sum(p q) / (sum p^2 + sum q^2 + eps)``.
    Returns the mean over all anchors of the batch (0, attached to ``student``, when there is none).
    """
    if student.shape != teacher.shape or student.dim() != 4:
        raise ValueError(f"student and teacher must be the same (B, D, H, W), got {tuple(student.shape)}, {tuple(teacher.shape)}")
    losses = []
    teacher = teacher.detach()
    for b, idx in enumerate(anchors):
        if len(idx) == 0:
            continue
        index = torch.as_tensor(idx, dtype=torch.long, device=student.device)
        s_flat = student[b].flatten(1)
        t_flat = teacher[b].flatten(1)
        p = soft_mask(student[b], s_flat[:, index].t(), delta_v).flatten(1)  # (K, H*W)
        q = soft_mask(teacher[b], t_flat[:, index].t(), delta_v).flatten(1)
        keep = valid[b].reshape(1, -1).to(p.dtype)
        p, q = p * keep, q * keep
        dice = 2.0 * (p * q).sum(1) / ((p * p).sum(1) + (q * q).sum(1) + eps)
        losses.append(1.0 - dice)
    if not losses:
        return student.sum() * 0.0
    return torch.cat(losses).mean()
