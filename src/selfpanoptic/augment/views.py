"""View geometry: the random views of multi-view self-training and the warps between frames.

Self-training (SAC) replicates every target image into ``V`` views (:func:`random_view_affines`,
:func:`make_views`): view 0 is the image itself, views 1..V-1 are random zoom-in crops, each
possibly flipped. The teacher's per-view predictions are brought back to the reference frame
and averaged (:func:`warp_to_reference`), and the fused pseudo-labels are cut out for every view
again (:func:`warp_to_views`, :func:`labels_to_views`). Instance self-training rotates crops
(:func:`rotation_affines`, :func:`rotate_maps`). The geometry is separate from the pseudo-label
logic (:mod:`selfpanoptic.pseudo`) and the losses because both use it.

Geometry conventions
--------------------
Coordinates are normalised as in :func:`torch.nn.functional.affine_grid` with
``align_corners=False``: x runs from -1 (left edge of the leftmost pixel) to +1 (right edge of the
rightmost pixel), y likewise from top to bottom. A view's 2x3 matrix ``theta = [A | t]`` maps a
point ``v`` of the *view* to the point ``A @ v + t`` of the *reference* image that it shows;
that is exactly the ``theta`` that ``affine_grid`` + ``grid_sample`` need to cut the view out of
the reference. Going back uses the inverse ``[A^-1 | -A^-1 t]``.

Everything here is a pure function of its inputs (randomness comes from an explicit generator).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "invert_affines",
    "labels_to_views",
    "make_views",
    "random_view_affines",
    "rotate_maps",
    "rotation_affines",
    "warp_to_reference",
    "warp_to_views",
]


def random_view_affines(
    batch: int,
    views: int,
    rng: np.random.Generator,
    min_scale: float = 0.5,
    max_scale: float = 1.0,
    flip_p: float = 0.5,
) -> torch.Tensor:
    """Random view geometry for a batch: ``(B, V, 2, 3)`` float32 affine matrices.

    View 0 of every image is the reference: the exact identity ``[[1, 0, 0], [0, 1, 0]]``, never
    cropped and never flipped, so that pseudo-labels are fused in the frame of the original image.
    Views 1..V-1 are zoom-in crops: relative side length ``s ~ U(min_scale, max_scale)`` (same for
    width and height, so the aspect ratio is kept), centre ``(tx, ty)`` uniform over the positions
    that keep the crop inside the image (``|tx|, |ty| <= 1 - s``), and a horizontal flip with
    probability ``flip_p``. The matrix is ``[[f * s, 0, tx], [0, s, ty]]`` with ``f = -1`` when
    flipped (see the module docstring for the convention).

    Draws from ``rng`` per image and view, in the order scale, tx, ty, flip.
    """
    if views < 1:
        raise ValueError(f"need at least one view (the reference), got {views}")
    if not 0.0 < min_scale <= max_scale <= 1.0:
        raise ValueError(f"need 0 < min_scale <= max_scale <= 1, got {min_scale}, {max_scale}")
    theta = np.zeros((batch, views, 2, 3), dtype=np.float64)
    theta[:, :, 0, 0] = 1.0
    theta[:, :, 1, 1] = 1.0
    for b in range(batch):
        for v in range(1, views):
            scale = rng.uniform(min_scale, max_scale)
            room = 1.0 - scale
            tx = rng.uniform(-room, room)
            ty = rng.uniform(-room, room)
            flip = -1.0 if rng.random() < flip_p else 1.0
            theta[b, v] = [[flip * scale, 0.0, tx], [0.0, scale, ty]]
    return torch.from_numpy(theta).float()


def invert_affines(affines: torch.Tensor) -> torch.Tensor:
    """Inverse of 2x3 affine matrices ``(..., 2, 3)``: ``[A | t] -> [A^-1 | -A^-1 t]``."""
    a = affines[..., :2]
    t = affines[..., 2:]
    a_inv = torch.linalg.inv(a)
    return torch.cat([a_inv, -a_inv @ t], dim=-1)


def _flat_affines(affines: torch.Tensor, n: int, like: torch.Tensor) -> torch.Tensor:
    if affines.dim() != 4 or affines.shape[-2:] != (2, 3):
        raise ValueError(f"affines must be (B, V, 2, 3), got {tuple(affines.shape)}")
    b, v = affines.shape[:2]
    if b * v != n:
        raise ValueError(f"{n} maps do not match {b} images x {v} views")
    return affines.reshape(b * v, 2, 3).to(device=like.device, dtype=like.dtype)


def _check_maps(maps: torch.Tensor, name: str) -> None:
    if maps.dim() != 4:
        raise ValueError(f"{name} must be (N, C, H, W), got {tuple(maps.shape)}")
    if not maps.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got {maps.dtype}")


def make_views(images: torch.Tensor, affines: torch.Tensor) -> torch.Tensor:
    """Cut every view out of its image: ``(B, C, H, W)``, ``(B, V, 2, 3)`` -> ``(B*V, C, H, W)``.

    Views keep the full size ``H x W`` (crops are zoomed in), are ordered image-major
    (``index = b * V + v``) and are sampled bilinearly; samples falling within half a pixel of the
    image border take the border value rather than blending in zeros.
    """
    _check_maps(images, "images")
    b, v = affines.shape[:2]
    if images.shape[0] != b:
        raise ValueError(f"{images.shape[0]} images but affines for {b}")
    repeated = images.repeat_interleave(v, dim=0)
    theta = _flat_affines(affines, b * v, images)
    grid = F.affine_grid(theta, list(repeated.shape), align_corners=False)
    return F.grid_sample(repeated, grid, mode="bilinear", padding_mode="border", align_corners=False)


def warp_to_reference(maps: torch.Tensor, affines: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Bring per-view maps back to the reference frame and average them.

    ``maps``: ``(B*V, C, H, W)`` (image-major, as from :func:`make_views`), e.g. softmax
    probabilities; ``affines``: ``(B, V, 2, 3)``.

    Returns ``(fused, coverage)``: ``fused`` ``(B, C, H, W)`` is, at every reference pixel, the
    mean of the warped maps over the views that cover that pixel (0 where no view does);
    ``coverage`` ``(B, 1, H, W)`` is the number of covering views (a float count, 0 = uncovered).
    A view covers a reference pixel when the pixel's centre maps inside the view, i.e. into
    ``[-1, 1]^2`` in the view's normalised coordinates; this binary coverage mask is computed from
    the same sampling grid that warps the maps. With the reference view present every pixel is
    covered at least once.
    """
    _check_maps(maps, "maps")
    b, v = affines.shape[:2]
    theta = _flat_affines(invert_affines(affines.double()).float(), maps.shape[0], maps)
    grid = F.affine_grid(theta, list(maps.shape), align_corners=False)
    warped = F.grid_sample(maps, grid, mode="bilinear", padding_mode="border", align_corners=False)
    inside = (grid.abs() <= 1.0 + 1e-6).all(dim=-1).unsqueeze(1).to(maps.dtype)  # (B*V, 1, H, W)
    _, c, h, w = maps.shape
    summed = (warped * inside).view(b, v, c, h, w).sum(dim=1)
    coverage = inside.view(b, v, 1, h, w).sum(dim=1)
    fused = summed / coverage.clamp_min(1.0)
    return fused, coverage


def warp_to_views(fused: torch.Tensor, affines: torch.Tensor) -> torch.Tensor:
    """Cut every view out of a reference-frame map: ``(B, C, H, W)`` -> ``(B*V, C, H, W)``.

    The same sampling as :func:`make_views`; used to hand the fused pseudo-label map to each view.
    """
    return make_views(fused, affines)


def labels_to_views(labels: torch.Tensor, confidence: torch.Tensor, affines: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Cut reference-frame pseudo-labels out for every view: ``(B, H, W)`` -> ``(B*V, H, W)``.

    Labels are sampled nearest (a label is never blended), confidence bilinearly, with the
    geometry of :func:`make_views`, so a view's label at a pixel is the reference label at the
    point that pixel shows. Returns ``(labels int64, confidence float)``.
    """
    if labels.dim() != 3 or confidence.shape != labels.shape:
        raise ValueError(f"labels and confidence must be the same (B, H, W), got {tuple(labels.shape)}, {tuple(confidence.shape)}")
    b, v = affines.shape[:2]
    conf = confidence.detach().float().unsqueeze(1)
    theta = _flat_affines(affines, b * v, conf)
    lab = labels.to(conf.dtype).unsqueeze(1).repeat_interleave(v, dim=0)
    grid = F.affine_grid(theta, list(lab.shape), align_corners=False)
    view_labels = F.grid_sample(lab, grid, mode="nearest", padding_mode="border", align_corners=False)
    view_conf = F.grid_sample(conf.repeat_interleave(v, dim=0), grid, mode="bilinear", padding_mode="border", align_corners=False)
    return view_labels.squeeze(1).round().long(), view_conf.squeeze(1)


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
