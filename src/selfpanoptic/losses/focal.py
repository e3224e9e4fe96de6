"""The loss of SAC self-training: focal-weighted, confidence-weighted cross-entropy.

The student is trained on thresholded pseudo-labels (:mod:`selfpanoptic.pseudo.thresholds`) with
:func:`focal_confidence_ce`; kept apart from the pseudo-label logic as the other losses are
(:mod:`selfpanoptic.losses.embedding`, :mod:`selfpanoptic.losses.consistency`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..classes import IGNORE
from ..distributed import global_mean

__all__ = ["focal_confidence_ce"]


def focal_confidence_ce(
    logits: torch.Tensor,
    labels: torch.Tensor,
    confidence: torch.Tensor,
    prior: torch.Tensor,
    power: float = 3.0,
    targets: torch.Tensor | None = None,
) -> torch.Tensor:
    """Focal-weighted, confidence-weighted cross-entropy on pseudo-labels (a scalar).

    ``logits``: ``(N, C, H, W)`` student logits; ``labels``: ``(N, H, W)`` int with 255 = ignore;
    ``confidence``: ``(N, H, W)`` teacher confidence of each pixel; ``prior``: ``(C,)``.

        ``loss = sum_pixels (1 - prior[y]) ** power * confidence * (-log softmax(logits)[y])
        / (number of non-ignored pixels)``

    Each pixel is weighted by its *own* confidence (the reference multiplies a ``(N, 1, H, W)``
    confidence into an ``(N, H, W)`` loss, which broadcasts to ``(N, N, H, W)`` and mixes images;
    that bug is not reproduced). No gradient flows into ``confidence`` or ``prior``. Returns 0
    (still attached to ``logits``) when every pixel is ignored. In a data-parallel job the count is
    that of the global batch (:func:`~selfpanoptic.distributed.global_mean`).

    ``targets``: optional ``(N, C, H, W)`` soft targets (self-correction,
    :func:`~selfpanoptic.losses.self_correction.self_corrected_targets`). The pixels kept and their
    weights stay those of ``labels``, ``confidence`` and the prior; only what a kept pixel is
    trained towards changes: ``-log softmax(logits)[y]`` becomes ``-sum_c targets[c] * log
    softmax(logits)[c]``. One-hot targets of ``labels`` give the loss without them.
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
    valid = labels != IGNORE
    if targets is None:
        per_pixel = F.cross_entropy(logits, labels, weight=weight, ignore_index=IGNORE, reduction="none")
    else:
        if targets.shape != logits.shape:
            raise ValueError(f"targets must be {tuple(logits.shape)}, got {tuple(targets.shape)}")
        soft = -(targets.detach().to(logits) * F.log_softmax(logits, dim=1)).sum(dim=1)
        per_pixel = soft * weight[torch.where(valid, labels, 0)]
    total = (per_pixel * confidence.detach().to(logits) * valid).sum()
    # over the global batch in a data-parallel job (the non-ignored pixels of every rank)
    return global_mean(total, valid.sum(), minimum=1)
