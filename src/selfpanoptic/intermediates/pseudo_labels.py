"""A round's pseudo-labels on the target train images: semantic (the round-start snapshot) and instance.

Datasets: ``labels`` (N, H, W) uint8 kept pseudo-labels, 255 = below its class threshold;
``argmax`` (N, H, W) uint8 fused teacher argmax before thresholds; ``confidence`` (N, H, W)
float16 fused softmax maximum; ``labels_before_guidance`` (N, H, W) uint8, only when instances
guided the labels; ``thresholds`` (N, 19) float32 per image and class; ``prior`` (19,) float32,
the mean fused softmax over the split, which seeds the training's moving prior.

Instance pseudo-labels: the pseudo instance masks a round's instance self-training starts from,
in the layout of an instance prediction (:mod:`.predictions`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..classes import IGNORE
from .base import Intermediate
from .predictions import InstancePrediction

if TYPE_CHECKING:
    import torch


class SemanticPseudoLabels(Intermediate):
    """Reader/writer of a round's semantic pseudo-label file."""

    STAGE = "semantic_pseudo_labels"
    KIND = "semantic pseudo-label file"
    FIX = "rerun pseudo-semantic of this round on this cache"
    STACKS = {
        "labels": (np.uint8, f"kept pseudo-labels (trainIds), {IGNORE} = ignored"),
        "argmax": (np.uint8, "fused teacher argmax before thresholds"),
        "confidence": (np.float16, "fused softmax maximum"),
        "labels_before_guidance": (np.uint8, "pseudo-labels before instance guidance"),
    }

    @property
    def prior(self) -> torch.Tensor:
        """The class prior ``(19,)`` float32 over the split."""
        # imported here: every stage that merely reads or audits intermediates would pay
        # for torch (1.5 s a process on a 2-core CPU) through this package's __init__
        import torch

        return torch.from_numpy(self.h5["prior"][()]).float()


class InstancePseudoLabels(InstancePrediction):
    """The pseudo instance masks a round's instance self-training starts from (same layout)."""

    STAGE = "instance_pseudo_labels"
    KIND = "instance pseudo-label file"
    FIX = "rerun pseudo-instance of this round on this cache"
