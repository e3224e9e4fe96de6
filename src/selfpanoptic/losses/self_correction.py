"""Linear self-correction of pseudo-labels (Ibrahim et al., "Semi-supervised semantic image
segmentation with self-correcting networks").

The student is trained towards the factorial distribution ``q`` closest to both the student's
own prediction ``p`` and an ancillary model's ``p_anc``:

    q = argmin_q KL(q || p) + alpha * KL(q || p_anc)  ∝  (p * p_anc ** alpha) ** (1 / (1 + alpha)),

a weighted geometric mean, which for softmax outputs is the softmax of the mixed logits
``(l + alpha * l_anc) / (1 + alpha)``. A large ``alpha`` trusts the ancillary model (early, when
the student is weak); annealing it lets the student correct the ancillary model's mistakes.
"""

from __future__ import annotations

import math

import torch

__all__ = ["annealed_alpha", "self_corrected_targets"]


def self_corrected_targets(student_logits: torch.Tensor, ancillary_logits: torch.Tensor, alpha: float) -> torch.Tensor:
    """The self-corrected soft targets ``q = softmax((l_student + alpha * l_ancillary) / (1 + alpha))``.

    ``student_logits``, ``ancillary_logits``: (N, C, H, W) (log-probabilities work as well: a
    constant per pixel cancels in the softmax); ``alpha`` >= 0. Returns (N, C, H, W) float32
    probabilities over dim 1, detached (no gradient flows into the targets). ``alpha = 0`` gives the
    student's softmax, ``alpha -> inf`` the ancillary model's.
    """
    if alpha < 0:
        raise ValueError(f"alpha must be >= 0, got {alpha}")
    if student_logits.shape != ancillary_logits.shape:
        raise ValueError(f"student {tuple(student_logits.shape)} and ancillary {tuple(ancillary_logits.shape)} "
                         "logits differ in shape")
    mixed = (student_logits.detach().float() + alpha * ancillary_logits.detach().float()) / (1.0 + alpha)
    return torch.softmax(mixed, dim=1)


def annealed_alpha(start: float, end: float, step: int, total: int) -> float:
    """``alpha`` at ``step`` (0-based) of ``total``: geometric from ``start`` (first step) to ``end``
    (last step), so that each factor of ten takes the same number of steps (start 30, end 0.5 spends
    as long above 4 as below it)."""
    if start <= 0 or end <= 0:
        raise ValueError(f"alpha_start and alpha_end must be > 0, got {start} and {end}")
    progress = min(step / max(total - 1, 1), 1.0)
    return math.exp(math.log(start) + progress * (math.log(end) - math.log(start)))
