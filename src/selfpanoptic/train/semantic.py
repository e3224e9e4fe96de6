"""The training step of source pretraining (and the target oracle) of the semantic model.

Cross-entropy on labelled random crops of a dataset cache.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..classes import IGNORE
from ..intermediates import DatasetCache
from .data import sample_batch
from .engine import StepFn


def semantic_step(cache: DatasetCache, settings: dict[str, Any], device: torch.device) -> StepFn:
    """The step function of :func:`~selfpanoptic.train.engine.train` for supervised DeepLab training.

    ``settings``: the ``semantic.train`` section (``batch_size``, ``crop``, ``hflip``, ``jitter``).
    Each step draws ``batch_size`` random crops of ``cache`` and returns their cross-entropy.
    """
    indices = np.arange(len(cache))
    crop = tuple(settings["crop"])

    def step(net: torch.nn.Module, rng: np.random.Generator, _: int):
        images, labels, _inst = sample_batch(
            cache, rng, indices, settings["batch_size"], crop, settings["hflip"], settings["jitter"]
        )
        logits = net(images.to(device))
        loss = F.cross_entropy(logits.float(), labels.to(device), ignore_index=IGNORE)
        return loss, {"ce": float(loss.detach())}, len(images)

    return step
