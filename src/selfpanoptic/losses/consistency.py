"""Rotation consistency between the student and the EMA network (the thesis' SPOCO variant).

The EMA network sees the target crop rotated by a random angle; its embeddings are rotated back
(:func:`rotate_maps` with the inverse matrix) and compared with the student's embeddings of the
unrotated crop through soft masks around shared anchor pixels (:func:`embedding_consistency_loss`).
SPOCO's reference code computes this term but never adds it to the loss; here it is added with
its weight.

Geometry follows :mod:`selfpanoptic.pseudo.sac`: ``affine_grid`` coordinates with
``align_corners=False``, a 2x3 matrix maps a point of the *output* to the point of the input it
shows.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from .embedding import DELTA_V, soft_mask


def rotation_affines(angles_deg: torch.Tensor | np.ndarray, height: int, width: int) -> torch.Tensor:
    """``(B, 2, 3)`` matrices that rotate ``height x width`` images by ``angles_deg`` about their centre.

    Rotation is by the angle in pixel space (a right angle stays right on a non-square image):
    in normalised coordinates ``[[c, -s h/w, 0], [s w/h, c, 0]]`` with ``c, s = cos, sin``.
    The inverse rotation is the matrix of ``-angles_deg``.
    """
    angles = torch.as_tensor(angles_deg, dtype=torch.float64).reshape(-1) * (math.pi / 180.0)
    c, s = torch.cos(angles), torch.sin(angles)
    zero = torch.zeros_like(c)
    theta = torch.stack(
        [torch.stack([c, -s * height / width, zero], dim=-1), torch.stack([s * width / height, c, zero], dim=-1)],
        dim=1,
    )
    return theta.float()


def rotate_maps(maps: torch.Tensor, affines: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Resample ``(B, C, H, W)`` maps with ``(B, 2, 3)`` matrices (bilinear).

    Returns ``(rotated, inside)``: ``inside`` ``(B, H, W)`` bool marks output pixels that show a
    point of the input (elsewhere ``rotated`` is 0).
    """
    if maps.dim() != 4:
        raise ValueError(f"maps must be (B, C, H, W), got {tuple(maps.shape)}")
    theta = affines.to(device=maps.device, dtype=maps.dtype)
    grid = F.affine_grid(theta, list(maps.shape), align_corners=False)
    rotated = F.grid_sample(maps, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    inside = (grid.abs() <= 1.0).all(dim=-1)
    return rotated, inside


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
