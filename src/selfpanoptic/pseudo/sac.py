"""Building blocks of SAC self-training: momentum teacher, multi-view pseudo-labels and loss.

SAC (Araslanov & Roth 2021, "Self-supervised Augmentation Consistency") adapts a segmentation
network to a new domain by training it (the *student*) on pseudo-labels made by a momentum copy
of itself (the *teacher*). One training iteration, in terms of this module:

1. Every target image is replicated into ``V`` views (:func:`random_view_affines`,
   :func:`make_views`): view 0 is the image itself, views 1..V-1 are random zoom-in crops,
   each possibly flipped.
2. The teacher predicts a softmax for every view; :func:`pseudo_labels_in_reference` warps them
   back to the reference frame, averages them and thresholds the fused map per class
   (:func:`class_thresholds`, from its class peaks and the moving class prior);
   :func:`labels_to_views` cuts the labels (255 below threshold) and confidences out for every
   view again. Instance guidance (:func:`refine_with_instances`) acts in between, in the
   reference frame.
3. The student sees the views after :func:`photometric_noise` and is trained with
   :func:`focal_confidence_ce`.
4. The class prior is updated from the teacher's softmax (:func:`update_prior`) and, every few
   iterations, the teacher follows the student (:func:`momentum_update`).

The thesis adds :func:`refine_with_instances` (instance masks vote on the pseudo-label) and the
``gt_instance_fraction`` ablation (:func:`sample_instances`).

Geometry conventions
--------------------
Coordinates are normalised as in :func:`torch.nn.functional.affine_grid` with
``align_corners=False``: x runs from -1 (left edge of the leftmost pixel) to +1 (right edge of the
rightmost pixel), y likewise from top to bottom. A view's 2x3 matrix ``theta = [A | t]`` maps a
point ``v`` of the *view* to the point ``A @ v + t`` of the *reference* image that it shows;
that is exactly the ``theta`` that ``affine_grid`` + ``grid_sample`` need to cut the view out of
the reference. Going back uses the inverse ``[A^-1 | -A^-1 t]``.

Everything here is a pure function of its inputs (randomness comes from an explicit generator),
so a training loop can be reproduced and each piece is unit-tested on its own.
"""

from __future__ import annotations

import math
from typing import Union

import numpy as np
import torch
import torch.nn.functional as F

from ..classes import IGNORE
from ..segments import instance_majority_classes

__all__ = [
    "class_peaks",
    "class_thresholds",
    "focal_confidence_ce",
    "initial_prior",
    "invert_affines",
    "labels_to_views",
    "make_views",
    "momentum_update",
    "photometric_noise",
    "pseudo_labels_from_probs",
    "pseudo_labels_in_reference",
    "random_view_affines",
    "refine_with_instances",
    "sample_instances",
    "thresholds_from_peaks",
    "update_prior",
    "warp_to_reference",
    "warp_to_views",
]

Generator = Union[np.random.Generator, torch.Generator]

PRIOR_INITIAL = 1e-3
"""Initial value of every class's moving prior (SAC's beta)."""


# --------------------------------------------------------------------------------------------
# Momentum teacher
# --------------------------------------------------------------------------------------------


@torch.no_grad()
def momentum_update(teacher: torch.nn.Module, student: torch.nn.Module, momentum: float = 0.99) -> None:
    """Move ``teacher`` towards ``student`` in place: ``teacher = m * teacher + (1 - m) * student``.

    Applies to every parameter (weights, biases) and every floating-point buffer (BatchNorm
    running mean and variance). Integer buffers (``num_batches_tracked``) are copied from the
    student. Both modules must have the same architecture (same parameter and buffer names and
    shapes); a mismatch raises ``ValueError``. ``momentum=0`` copies the student, ``1`` keeps the
    teacher. The caller decides how often to call it (SAC: every ``momentum_every`` iterations).
    """
    if not 0.0 <= momentum <= 1.0:
        raise ValueError(f"momentum must lie in [0, 1], got {momentum}")
    pairs = [
        (dict(teacher.named_parameters()), dict(student.named_parameters()), "parameter"),
        (dict(teacher.named_buffers()), dict(student.named_buffers()), "buffer"),
    ]
    for t_items, s_items, kind in pairs:
        if t_items.keys() != s_items.keys():
            missing = sorted(set(t_items) ^ set(s_items))
            raise ValueError(f"teacher and student differ in {kind}s: {missing[:5]}")
        for name, t in t_items.items():
            s = s_items[name]
            if t.shape != s.shape:
                raise ValueError(f"{kind} {name}: teacher shape {tuple(t.shape)} != student {tuple(s.shape)}")
            if t.is_floating_point() or t.is_complex():
                t.mul_(momentum).add_(s.detach().to(t.dtype), alpha=1.0 - momentum)
            else:
                t.copy_(s)


# --------------------------------------------------------------------------------------------
# Views and warping
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# Pseudo-labels
# --------------------------------------------------------------------------------------------


def initial_prior(num_classes: int, initial: float = PRIOR_INITIAL) -> torch.Tensor:
    """The starting class prior: ``(C,)`` float32, every entry ``initial``."""
    return torch.full((num_classes,), initial, dtype=torch.float32)


def class_peaks(probs: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """Per image and class, the highest confidence among the pixels predicted that class: ``(B, C)``.

    ``probs``: ``(B, C, H, W)`` probabilities. ``peak[b, c]`` is the largest max-softmax among
    the pixels of image ``b`` whose argmax is ``c``, 0 when no pixel is predicted ``c``.
    ``valid``: optional ``(B, H, W)`` or ``(B, 1, H, W)`` boolean mask; pixels outside it do not
    count (e.g. reference pixels no view covers).
    """
    _check_maps(probs, "probs")
    b, c = probs.shape[:2]
    confidence, argmax = probs.detach().max(dim=1)
    if valid is not None:
        confidence = confidence * valid.reshape(confidence.shape).to(confidence.dtype)
    peak = torch.zeros(b, c, dtype=probs.dtype, device=probs.device)
    return peak.scatter_reduce(1, argmax.reshape(b, -1), confidence.reshape(b, -1), reduce="amax")


def thresholds_from_peaks(
    peaks: torch.Tensor,
    prior: torch.Tensor,
    ratio: float = 0.75,
    temperature: float = PRIOR_INITIAL,
    floor: float = 0.2,
) -> torch.Tensor:
    """Class-adaptive thresholds ``(B, C)`` from class peaks ``(B, C)`` and the prior ``(C,)``.

        ``thr[b, c] = max(peak[b, c] * ratio * (1 - exp(-prior[c] / temperature)), floor)``

    so rare classes (small prior) get lower thresholds, and a class never predicted in an image
    (peak 0) gets ``floor``.
    """
    c = peaks.shape[-1]
    if prior.shape != (c,):
        raise ValueError(f"prior must be ({c},), got {tuple(prior.shape)}")
    scale = ratio * (1.0 - torch.exp(-prior.to(peaks) / temperature))
    return (peaks * scale).clamp_min(floor)


def class_thresholds(
    probs: torch.Tensor,
    prior: torch.Tensor,
    ratio: float = 0.75,
    temperature: float = PRIOR_INITIAL,
    floor: float = 0.2,
    valid: torch.Tensor | None = None,
) -> torch.Tensor:
    """Class-adaptive confidence thresholds ``(B, C)`` for probability maps ``(B, C, H, W)``.

    :func:`class_peaks` of ``probs`` (over the ``valid`` pixels) turned into thresholds by
    :func:`thresholds_from_peaks` with the moving class prior ``(C,)`` (:func:`update_prior`).
    """
    _check_maps(probs, "probs")
    if prior.shape != (probs.shape[1],):
        raise ValueError(f"prior must be ({probs.shape[1]},), got {tuple(prior.shape)}")
    return thresholds_from_peaks(class_peaks(probs, valid), prior, ratio, temperature, floor)


def pseudo_labels_from_probs(probs: torch.Tensor, thresholds: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Threshold probability maps into pseudo-labels.

    ``probs``: ``(N, C, H, W)``; ``thresholds``: ``(N, C)`` (from :func:`class_thresholds`).
    Returns ``(labels, confidence)``: ``labels`` ``(N, H, W)`` int64, the argmax class where its
    confidence is strictly above that class's threshold, else 255; ``confidence`` ``(N, H, W)``,
    the max probability of every pixel (also where the label is 255).
    """
    _check_maps(probs, "probs")
    if thresholds.shape != probs.shape[:2]:
        raise ValueError(f"thresholds must be {tuple(probs.shape[:2])}, got {tuple(thresholds.shape)}")
    confidence, argmax = probs.detach().max(dim=1)
    n = probs.shape[0]
    thr = thresholds.to(probs).gather(1, argmax.reshape(n, -1)).view_as(confidence)
    labels = torch.where(confidence > thr, argmax, torch.full_like(argmax, IGNORE))
    return labels, confidence


def pseudo_labels_in_reference(
    teacher_probs_views: torch.Tensor,
    affines: torch.Tensor,
    prior: torch.Tensor,
    ratio: float = 0.75,
    temperature: float = PRIOR_INITIAL,
    floor: float = 0.2,
) -> tuple[torch.Tensor, torch.Tensor]:
    """SAC pseudo-labels in the reference frame of every image, from the teacher's views.

    ``teacher_probs_views``: ``(B*V, C, H, W)`` softmax (image-major); ``affines``:
    ``(B, V, 2, 3)``; ``prior``: ``(C,)``. The views are averaged in the reference frame
    (:func:`warp_to_reference`), thresholds come from that fused map over its covered pixels
    (:func:`class_thresholds`). Returns ``(labels (B, H, W) int64 with 255, confidence (B, H, W))``;
    refine them (:func:`refine_with_instances`) and hand them to the views with
    :func:`labels_to_views`.
    """
    fused, coverage = warp_to_reference(teacher_probs_views.detach(), affines)
    thresholds = class_thresholds(fused, prior, ratio, temperature, floor, valid=coverage > 0)
    return pseudo_labels_from_probs(fused, thresholds)


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


def update_prior(
    prior: torch.Tensor,
    probs: torch.Tensor,
    momentum: float = 0.99,
    initial: float = PRIOR_INITIAL,
) -> torch.Tensor:
    """One step of the moving class prior; returns a new ``(C,)`` tensor (input untouched).

    ``mean[c]`` is the teacher softmax ``probs`` ``(N, C, H, W)`` averaged over images and pixels.
    The update is ``prior = momentum * prior + (1 - momentum) * mean``, except for a class seen
    for the first time: where ``prior[c]`` still equals ``initial`` exactly and ``mean[c] >
    initial``, the prior jumps straight to ``mean[c]`` (as in the reference implementation, so a
    class that appears late is not stuck with a tiny prior for hundreds of iterations). A class
    whose mean stays at or below ``initial`` decays by the ordinary rule.
    """
    _check_maps(probs, "probs")
    if prior.shape != (probs.shape[1],):
        raise ValueError(f"prior must be ({probs.shape[1]},), got {tuple(prior.shape)}")
    mean = probs.detach().mean(dim=(0, 2, 3)).to(prior)
    updated = momentum * prior + (1.0 - momentum) * mean
    first_seen = (prior == initial) & (mean > initial)
    return torch.where(first_seen, mean, updated)


# --------------------------------------------------------------------------------------------
# Loss
# --------------------------------------------------------------------------------------------


def focal_confidence_ce(
    logits: torch.Tensor,
    labels: torch.Tensor,
    confidence: torch.Tensor,
    prior: torch.Tensor,
    power: float = 3.0,
) -> torch.Tensor:
    """Focal-weighted, confidence-weighted cross-entropy on pseudo-labels (a scalar).

    ``logits``: ``(N, C, H, W)`` student logits; ``labels``: ``(N, H, W)`` int with 255 = ignore;
    ``confidence``: ``(N, H, W)`` teacher confidence of each pixel; ``prior``: ``(C,)``.

        ``loss = sum_pixels (1 - prior[y]) ** power * confidence * (-log softmax(logits)[y])
        / (number of non-ignored pixels)``

    Each pixel is weighted by its *own* confidence (the reference multiplies a ``(N, 1, H, W)``
    confidence into an ``(N, H, W)`` loss, which broadcasts to ``(N, N, H, W)`` and mixes images;
    that bug is not reproduced). No gradient flows into ``confidence`` or ``prior``. Returns 0
    (still attached to ``logits``) when every pixel is ignored.
    """
    if logits.dim() != 4:
        raise ValueError(f"logits must be (N, C, H, W), got {tuple(logits.shape)}")
    expected = (logits.shape[0],) + tuple(logits.shape[2:])
    if tuple(labels.shape) != expected or tuple(confidence.shape) != expected:
        raise ValueError(
            f"labels and confidence must be {expected}, got {tuple(labels.shape)} and {tuple(confidence.shape)}"
        )
    labels = labels.long()
    weight = (1.0 - prior.detach().to(logits)) ** power
    per_pixel = F.cross_entropy(logits, labels, weight=weight, ignore_index=IGNORE, reduction="none")
    valid = labels != IGNORE
    total = (per_pixel * confidence.detach().to(logits) * valid).sum()
    return total / valid.sum().clamp_min(1)


# --------------------------------------------------------------------------------------------
# Photometric noise
# --------------------------------------------------------------------------------------------

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


def photometric_noise(
    images: torch.Tensor,
    rng: Generator,
    brightness: float = 0.4,
    contrast: float = 0.4,
    saturation: float = 0.4,
    grey_p: float = 0.2,
    blur_p: float = 1.0,
    sigma: tuple[float, float] = (0.1, 2.0),
) -> torch.Tensor:
    """Random photometric noise for the student's input; returns a new ``(N, 3, H, W)`` tensor.

    ``images``: float in ``[0, 1]``. Per image, in this fixed order and drawing from ``rng`` (a
    ``numpy.random.Generator`` or ``torch.Generator``) in this order:

    1. colour jitter: brightness factor ``U(1 - brightness, 1 + brightness)`` (multiply), contrast
       factor ``U(1 - contrast, 1 + contrast)`` (blend with the image's mean grey level),
       saturation factor ``U(1 - saturation, 1 + saturation)`` (blend with the grey image);
       clipped to ``[0, 1]`` after each step (torchvision's definitions, fixed order);
    2. greyscale with probability ``grey_p`` (luma 0.299 R + 0.587 G + 0.114 B in all channels);
    3. gaussian blur with probability ``blur_p`` (SAC blurs every image, hence 1.0), sigma
       ``U(*sigma)`` pixels, separable kernel of radius ``ceil(3 sigma)``, replicated borders.

    The result stays in ``[0, 1]``; the same generator state gives the same output. Geometry is
    untouched, so pseudo-labels made for the clean views still apply.
    """
    if images.dim() != 4 or images.shape[1] != 3 or not images.is_floating_point():
        raise ValueError(f"images must be float (N, 3, H, W), got {images.dtype} {tuple(images.shape)}")
    out = []
    for image in images:
        b = _uniform(rng, 1.0 - brightness, 1.0 + brightness)
        c = _uniform(rng, 1.0 - contrast, 1.0 + contrast)
        s = _uniform(rng, 1.0 - saturation, 1.0 + saturation)
        make_grey = _uniform(rng, 0.0, 1.0) < grey_p
        do_blur = _uniform(rng, 0.0, 1.0) < blur_p
        sig = _uniform(rng, sigma[0], sigma[1])

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


# --------------------------------------------------------------------------------------------
# Instance-guided refinement (thesis)
# --------------------------------------------------------------------------------------------


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
        lut_ids, lut_classes = ids[keep], classes[keep]
        pos = np.searchsorted(lut_ids, inst)
        pos = np.clip(pos, 0, len(lut_ids) - 1)
        hit = (inst > 0) & (lut_ids[pos] == inst)
        refined[hit] = lut_classes[pos[hit]].astype(refined.dtype)
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
