"""SAC pseudo-labels: class-adaptive thresholds, the moving class prior, multi-view fusion.

The teacher's softmax is fused over the views in the reference frame, and every class gets its
own confidence threshold from its peak confidence in the image and the moving class prior
(:func:`class_thresholds`, :func:`update_prior`, checkpointed as :class:`ClassPrior`); pixels
below it become 255. Separate from the view geometry (:mod:`selfpanoptic.augment.views`) and the
loss (:mod:`selfpanoptic.losses.focal`), which it only uses or feeds.
"""

from __future__ import annotations

from typing import Callable

import torch

from ..augment.views import _check_maps
from ..classes import IGNORE

__all__ = [
    "PRIOR_INITIAL",
    "ClassPrior",
    "align_to_reference",
    "alignment_weights",
    "class_peaks",
    "class_quantiles",
    "class_thresholds",
    "initial_prior",
    "pseudo_labels_from_probs",
    "thresholds_from_peaks",
    "update_prior",
]

PRIOR_INITIAL = 1e-3
"""Initial value of every class's moving prior (SAC's beta)."""


def initial_prior(num_classes: int, initial: float = PRIOR_INITIAL) -> torch.Tensor:
    """The starting class prior: ``(C,)`` float32, every entry ``initial``."""
    return torch.full((num_classes,), initial, dtype=torch.float32)


def alignment_weights(reference: torch.Tensor, prior: torch.Tensor, strength: float) -> torch.Tensor:
    """Per-class factors ``(C,)`` that lift the classes the teacher predicts less than ``reference``.

        ``w[c] = max(reference[c] / prior[c], 1) ** strength``

    ``reference``: ``(C,)`` expected class shares (e.g. the source labels' pixel shares);
    ``prior``: ``(C,)`` the teacher's moving class prior; ``strength`` >= 0 (0: all ones). A class
    at or above its reference share keeps factor 1: the factors only ever lift a starving class
    (a collapsing sky), they never push a class down.
    """
    if reference.shape != prior.shape or reference.dim() != 1:
        raise ValueError(f"reference and prior must be the same (C,), got {tuple(reference.shape)} and {tuple(prior.shape)}")
    if strength < 0:
        raise ValueError(f"strength must be >= 0, got {strength}")
    ratio = reference.to(prior) / prior.clamp_min(PRIOR_INITIAL)
    return ratio.clamp_min(1.0) ** strength


def align_to_reference(probs: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Probability maps ``(B, C, H, W)`` reweighted per class by ``weights`` ``(C,)`` and
    renormalised over the classes (pixels whose probabilities are all 0 stay 0)."""
    _check_maps(probs, "probs")
    weighted = probs * weights.to(probs).view(1, -1, 1, 1)
    return weighted / weighted.sum(dim=1, keepdim=True).clamp_min(1e-12)


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


def class_quantiles(probs: torch.Tensor, quantile: float, valid: torch.Tensor | None = None) -> torch.Tensor:
    """Per image and class, a quantile of the confidences of the pixels predicted that class: ``(B, C)``.

    ``probs``: ``(B, C, H, W)`` probabilities; ``quantile`` in [0, 1]. ``q[b, c]`` is the
    ``quantile`` of the max-softmax values of the pixels of image ``b`` whose argmax is ``c``
    (the lower of the two order statistics around it: position ``floor(quantile * (n - 1))`` of
    the ``n`` sorted values), 0 when no pixel is predicted ``c``. ``valid``: optional ``(B, H, W)``
    or ``(B, 1, H, W)`` boolean mask of the pixels that count.

    A threshold at ``q[b, c]`` keeps the most confident ``1 - quantile`` of every class's pixels
    (class-balanced self-training, CBST): a class that covers other classes' pixels with lower
    confidence (building over a grey sky) loses those first, and no class is kept whole while
    another is starved.
    """
    _check_maps(probs, "probs")
    if not 0.0 <= quantile <= 1.0:
        raise ValueError(f"quantile must lie in [0, 1], got {quantile}")
    b, c = probs.shape[:2]
    confidence, argmax = probs.detach().max(dim=1)
    confidence, argmax = confidence.reshape(b, -1).double(), argmax.reshape(b, -1)
    counted = torch.ones_like(argmax, dtype=torch.bool) if valid is None else valid.reshape(b, -1).bool()
    # one sort per image: class c's confidences land in [c, c + 1), pixels that do not count after all
    key = torch.where(counted, argmax.double() + confidence.clamp(0.0, 1.0 - 1e-9), torch.full_like(confidence, c + 1.0))
    ordered = key.sort(dim=1).values
    counts = torch.zeros(b, c, dtype=torch.long, device=probs.device).scatter_add_(
        1, argmax, counted.long())
    starts = counts.cumsum(dim=1) - counts
    position = starts + torch.floor(quantile * (counts - 1).clamp_min(0).double()).long()
    picked = ordered.gather(1, position.clamp_max(ordered.shape[1] - 1))
    classes = torch.arange(c, device=probs.device, dtype=torch.double)
    return torch.where(counts > 0, picked - classes, torch.zeros_like(picked)).to(probs.dtype)


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
    quantile: float = 0.0,
) -> torch.Tensor:
    """Class-adaptive confidence thresholds ``(B, C)`` for probability maps ``(B, C, H, W)``.

    :func:`class_peaks` of ``probs`` (over the ``valid`` pixels) turned into thresholds by
    :func:`thresholds_from_peaks` with the moving class prior ``(C,)`` (:func:`update_prior`).
    Both check their inputs (``probs`` a float ``(B, C, H, W)`` map, ``prior`` of shape ``(C,)``).
    ``quantile`` > 0 raises each threshold to at least :func:`class_quantiles` of the class (a
    pixel is kept when its confidence is strictly above the threshold, so at most the top
    ``1 - quantile`` of each class's pixels stay).
    """
    thresholds = thresholds_from_peaks(class_peaks(probs, valid), prior, ratio, temperature, floor)
    if quantile > 0:
        thresholds = torch.maximum(thresholds, class_quantiles(probs, quantile, valid))
    return thresholds


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


def update_prior(
    prior: torch.Tensor,
    probs: torch.Tensor,
    momentum: float = 0.99,
    initial: float = PRIOR_INITIAL,
    batch_mean: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """One step of the moving class prior; returns a new ``(C,)`` tensor (input untouched).

    ``mean[c]`` is the teacher softmax ``probs`` ``(N, C, H, W)`` averaged over images and pixels.
    The update is ``prior = momentum * prior + (1 - momentum) * mean``, except for a class seen
    for the first time: where ``prior[c]`` still equals ``initial`` exactly and ``mean[c] >
    initial``, the prior jumps straight to ``mean[c]`` (as in the reference implementation, so a
    class that appears late is not stuck with a tiny prior for hundreds of iterations). A class
    whose mean stays at or below ``initial`` decays by the ordinary rule. ``batch_mean``: applied to
    ``mean`` before the update (a data-parallel job averages it over the ranks' equal slices,
    :func:`~selfpanoptic.distributed.mean_over_ranks`, so every rank's prior is the global one).
    """
    _check_maps(probs, "probs")
    if prior.shape != (probs.shape[1],):
        raise ValueError(f"prior must be ({probs.shape[1]},), got {tuple(prior.shape)}")
    mean = probs.detach().mean(dim=(0, 2, 3)).to(prior)
    if batch_mean is not None:
        mean = batch_mean(mean)
    updated = momentum * prior + (1.0 - momentum) * mean
    first_seen = (prior == initial) & (mean > initial)
    return torch.where(first_seen, mean, updated)


class ClassPrior:
    """The moving class prior ``(C,)`` as a checkpointable object."""

    def __init__(self, value: torch.Tensor):
        self.value = value.float().clone()

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"value": self.value.clone()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.value = state["value"].float().clone()
