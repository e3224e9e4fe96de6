"""Cross-entropy on labelled pixels, averaged over the batch's labelled pixels (global in a data-parallel job)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..classes import IGNORE
from ..distributed import global_mean, is_distributed

__all__ = ["labelled_cross_entropy"]


def labelled_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over the pixels whose label is not ``IGNORE`` (255): a scalar.

    ``logits``: ``(N, C, H, W)`` float; ``labels``: ``(N, H, W)`` int64. NaN when every pixel is
    ignored, as :func:`torch.nn.functional.cross_entropy`. In one process this is that function
    itself; in a data-parallel job the mean runs over the labelled pixels of the whole batch
    (:func:`~selfpanoptic.distributed.global_mean`), not of this rank's slice, whose share of
    labelled pixels differs from the other ranks'.
    """
    if not is_distributed():
        return F.cross_entropy(logits, labels, ignore_index=IGNORE)
    total = F.cross_entropy(logits, labels, ignore_index=IGNORE, reduction="sum")
    return global_mean(total, (labels != IGNORE).sum())
