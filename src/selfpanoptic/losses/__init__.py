"""Training losses. :mod:`.embedding` holds the SPOCO-style instance-embedding losses,
:mod:`.consistency` the rotation-consistency term of instance self-training and :mod:`.focal` the
focal, confidence-weighted cross-entropy of semantic self-training (SAC)."""

from __future__ import annotations

from .embedding import (
    DELTA_D,
    DELTA_V,
    dice_loss_per_instance,
    discriminative_loss,
    instance_means,
    soft_mask,
    spoco_loss,
    two_sigma,
    unlabelled_push_loss,
)

__all__ = [
    "DELTA_D",
    "DELTA_V",
    "dice_loss_per_instance",
    "discriminative_loss",
    "instance_means",
    "soft_mask",
    "spoco_loss",
    "two_sigma",
    "unlabelled_push_loss",
]
