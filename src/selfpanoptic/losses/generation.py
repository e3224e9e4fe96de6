"""The losses of generative co-learning: reconstruction (L1 / L2), the GAN terms, and the weight
``beta`` that mixes generation with segmentation.

``total = (1 - beta) * segmentation + beta * generation`` (:func:`co_learning_beta`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["co_learning_beta", "discriminator_loss", "generator_adversarial_loss", "reconstruction_loss"]


def reconstruction_loss(generated: torch.Tensor, target: torch.Tensor, kind: str = "l1") -> torch.Tensor:
    """Mean L1 or L2 error over the entries where ``target`` is finite (a scalar).

    ``generated``, ``target``: (B, C, H, W) float; NaN in ``target`` marks what is unknown (depth
    of a sky pixel, an image without a depth file) and is left out. ``kind``: ``"l1"`` (mean
    absolute error) or ``"l2"`` (mean squared error). Returns 0, still attached to ``generated``,
    when no entry is known.
    """
    if generated.shape != target.shape:
        raise ValueError(f"generated {tuple(generated.shape)} and target {tuple(target.shape)} differ in shape")
    if kind not in ("l1", "l2"):
        raise ValueError(f"kind must be 'l1' or 'l2', not {kind!r}")
    known = torch.isfinite(target)
    difference = (generated - torch.where(known, target, generated.detach())) * known
    error = difference.abs() if kind == "l1" else difference.square()
    return error.sum() / known.sum().clamp_min(1)


def generator_adversarial_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """The non-saturating generator loss: BCE of the discriminator's logits on generated images
    against "real" (the generator maximises log D(G(x)) instead of minimising log(1 - D(G(x))))."""
    return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """BCE of the discriminator: real patches towards 1, generated ones towards 0, halved as in pix2pix."""
    real = F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
    fake = F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
    return 0.5 * (real + fake)


def co_learning_beta(schedule: str, beta: float, step: int, total: int) -> float:
    """The generation weight at ``step`` (0-based) of ``total`` steps.

    ``constant``: ``beta`` throughout. ``linear``: the reference's rebalancing, from 1 at the first
    step (generation only) down to 0 at the last (segmentation only); ``beta`` is then unused.
    """
    if schedule == "constant":
        return float(beta)
    if schedule == "linear":
        return 1.0 - step / max(total - 1, 1)
    raise ValueError(f"unknown beta schedule {schedule!r}; choose constant or linear")
