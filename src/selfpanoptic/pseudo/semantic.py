"""The one way a round's semantic pseudo-labels are made: teacher views -> fusion -> thresholds -> guidance.

:func:`make_pseudo_labels` is called by the training step of semantic self-training on every
batch (random crops, the moving class prior). The ``pseudo-semantic`` stage forwards every whole
target train image once, keeps its fused softmax, and applies :func:`labels_from_fused` (the steps
of :func:`make_pseudo_labels` after the fusion) once the split's class prior is known, so the file
a person audits is made by exactly the code the student learns from.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..augment.normalise import normalise_unit
from ..augment.views import make_views, warp_to_reference
from ..intermediates import MappedStack
from ..settings import GuidanceSettings, PseudoLabelSettings
from .guidance import refine_with_instances, sample_instances
from .thresholds import PRIOR_INITIAL, align_to_reference, alignment_weights, class_thresholds, pseudo_labels_from_probs


@dataclass
class PseudoLabels:
    """Pseudo-labels of a batch of ``B`` images with ``V`` views each, in the images' own frame.

    ``labels`` (B, H, W) int64 trainIds, 255 = ignored (after guidance, when given);
    ``labels_before_guidance`` (B, H, W) int64 or None without guidance; ``argmax`` (B, H, W)
    int64 fused teacher argmax; ``confidence`` (B, H, W) float32 fused softmax maximum;
    ``thresholds`` (B, C) float32; ``views`` (B*V, 3, H, W) the clean views in [0, 1];
    ``teacher_probs`` (B*V, C, H, W) the teacher's softmax of every view (for the moving prior);
    both None when made from an already fused map (:func:`labels_from_fused`).
    """

    labels: torch.Tensor
    labels_before_guidance: torch.Tensor | None
    argmax: torch.Tensor
    confidence: torch.Tensor
    thresholds: torch.Tensor
    views: torch.Tensor | None
    teacher_probs: torch.Tensor | None


@torch.no_grad()
def teacher_views(teacher: torch.nn.Module, images: torch.Tensor, affines: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The views of a batch and the teacher's softmax of each.

    ``images`` (B, 3, H, W) float in [0, 1]; ``affines`` (B, V, 2, 3). Returns
    ``(views (B*V, 3, H, W), teacher_probs (B*V, C, H, W))``, image-major.
    """
    views = make_views(images, affines)
    return views, torch.softmax(teacher(normalise_unit(views)).float(), dim=1)


def fuse_and_threshold(
    probs_views: torch.Tensor, affines: torch.Tensor, prior: torch.Tensor, ratio: float = 0.75,
    temperature: float = PRIOR_INITIAL, floor: float = 0.2, quantile: float = 0.0,
    class_weights: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """SAC pseudo-labels in each image's own frame, from the teacher's softmax of its views.

    ``probs_views``: (B*V, C, H, W) softmax (image-major); ``affines``: (B, V, 2, 3); ``prior``:
    (C,). The views are averaged in the reference frame
    (:func:`~selfpanoptic.augment.views.warp_to_reference`); thresholds come from that fused map
    over its covered pixels (:func:`~selfpanoptic.pseudo.thresholds.class_thresholds`, with the
    per-class confidence ``quantile`` as a lower bound when > 0). ``class_weights`` ``(C,)``, when
    given, reweight the fused map first (:func:`~selfpanoptic.pseudo.thresholds.align_to_reference`).
    Returns
    ``(labels (B, H, W) int64 with 255, confidence (B, H, W), argmax (B, H, W), thresholds (B, C))``.
    """
    fused, coverage = warp_to_reference(probs_views.detach(), affines)
    return threshold_fused(fused, coverage > 0, prior, ratio, temperature, floor, quantile, class_weights)


def threshold_fused(
    fused: torch.Tensor, covered: torch.Tensor, prior: torch.Tensor, ratio: float = 0.75,
    temperature: float = PRIOR_INITIAL, floor: float = 0.2, quantile: float = 0.0,
    class_weights: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`fuse_and_threshold` after the fusion: ``fused`` (B, C, H, W) views' mean softmax in
    the reference frame, ``covered`` (B, 1, H, W) bool, the pixels some view covers; the rest as there."""
    if class_weights is not None:
        fused = align_to_reference(fused, class_weights)
    thresholds = class_thresholds(fused, prior, ratio, temperature, floor, valid=covered, quantile=quantile)
    labels, confidence = pseudo_labels_from_probs(fused, thresholds)
    argmax = fused.max(dim=1)[1]  # the same tie-breaking as the labels
    return labels, confidence, argmax, thresholds


@torch.no_grad()
def make_pseudo_labels(
    teacher: torch.nn.Module, images: torch.Tensor, affines: torch.Tensor, prior: torch.Tensor,
    settings: PseudoLabelSettings, guides: np.ndarray | None = None, rules: GuidanceSettings | None = None,
    reference: torch.Tensor | None = None,
) -> PseudoLabels:
    """SAC pseudo-labels of a batch, optionally refined by instance masks.

    ``teacher``: the teacher network (eval mode); ``images`` (B, 3, H, W) float in [0, 1] on its
    device; ``affines`` (B, V, 2, 3) view geometry (view 0 the identity); ``prior`` (C,) class
    prior; ``settings``: the thresholds and the alignment; ``guides``: (B, H, W) instance maps
    laid over the labels in the images' frame
    (:func:`~selfpanoptic.pseudo.guidance.refine_with_instances`), under ``rules``, which say
    which instances may relabel which pixels (required with ``guides``). ``reference``: ``(C,)``
    expected class shares (the source labels'); with ``settings.alignment`` > 0 the fused map is
    lifted towards them for the classes the teacher's ``prior`` has fallen below
    (:func:`~selfpanoptic.pseudo.thresholds.alignment_weights`).
    """
    views, probs = teacher_views(teacher, images, affines)
    fused, coverage = warp_to_reference(probs, affines)
    made = labels_from_fused(fused, coverage > 0, prior, settings, guides, rules, reference)
    made.views, made.teacher_probs = views, probs
    return made


@torch.no_grad()
def labels_from_fused(
    fused: torch.Tensor, covered: torch.Tensor, prior: torch.Tensor, settings: PseudoLabelSettings,
    guides: np.ndarray | None = None, rules: GuidanceSettings | None = None, reference: torch.Tensor | None = None,
) -> PseudoLabels:
    """:func:`make_pseudo_labels` from the views' fused softmax, for a caller that fused them
    earlier (the ``pseudo-semantic`` stage, whose class prior is known only after every image).

    ``fused`` (B, C, H, W) float32: the views' mean softmax in each image's frame
    (:func:`~selfpanoptic.augment.views.warp_to_reference`); ``covered`` (B, 1, H, W) bool: the
    pixels some view covers; the rest as in :func:`make_pseudo_labels`. The result's ``views``
    and ``teacher_probs`` are None (no views are made here).
    """
    weights = None
    if settings.alignment > 0:
        if reference is None:
            raise ValueError("selftrain.semantic.alignment > 0 needs the reference class shares")
        weights = alignment_weights(reference.to(prior), prior, settings.alignment)
    labels, confidence, argmax, thresholds = threshold_fused(
        fused, covered, prior, settings.threshold_ratio, settings.prior_temperature, settings.threshold_floor,
        settings.class_quantile, weights,
    )
    before = None
    if guides is not None:
        before = labels
        labels = torch.stack([
            refine_with_instances(labels[b], guides[b], rules.min_kept_share, rules.min_agreement, rules.fill_ignored)
            for b in range(len(labels))
        ])
    return PseudoLabels(labels, before, argmax, confidence, thresholds, None, None)


def guidance_instances(mode: str, gt_instance_fraction: float, ground_truth, predicted, seed: int):
    """The instance maps that guide a round's pseudo-labels, read per image, or None.

    ``mode``: the round's guidance (:func:`selfpanoptic.config.guidance_mode`): ``"none"``;
    ``"predicted"``: ``predicted``, round r-1's instance prediction on the images; or
    ``"ground_truth"``: their true instances ``ground_truth``, of which each image keeps
    ``gt_instance_fraction``, drawn from ``(seed, image index)`` alone, so the same annotations
    guide every step of the round however often, and in whichever process, an image is read.
    ``ground_truth`` and ``predicted`` are ``(N, H, W)`` arrays or per-image views of a file
    (:class:`~selfpanoptic.intermediates.StackView`). Returns a
    :class:`~selfpanoptic.intermediates.MappedStack` indexed like an ``(N, H, W)`` int32 array
    (``guides[i]``, ``guides[a:b]``): each image is read and made when asked for, so only the
    images of a batch are held, never the split.
    """
    if mode == "none":
        return None
    if mode == "ground_truth":
        def keep_fraction(i: int, instances: np.ndarray) -> np.ndarray:
            return sample_instances(instances.astype(np.int32), gt_instance_fraction, np.random.default_rng([seed, i]))

        return MappedStack(ground_truth, keep_fraction, np.int32)
    return MappedStack(predicted, lambda i, instances: instances.astype(np.int32), np.int32)
