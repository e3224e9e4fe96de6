"""Training losses. :mod:`.embedding` holds the SPOCO-style instance-embedding losses."""

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
