"""StyleGAN2's discriminator loss and its two regularisers, and the terms of GAN inversion.

- :func:`logistic_discriminator_loss`: ``softplus(D(fake)) + softplus(-D(real))``; the generator's
  non-saturating counterpart is :func:`~selfpanoptic.losses.generation.generator_adversarial_loss`.
- :func:`r1_penalty`: the squared gradient norm of the discriminator's output at real inputs
  (Mescheder et al. 2018), which keeps the discriminator from growing steep walls around the data.
- :func:`path_length_penalty`: how far the generator's Jacobian (W+ -> image) is from a constant
  scale, so that equal steps in W+ change the image by equal amounts: what makes inversion smooth.
- :func:`noise_regularisation`: inversion's penalty on noise maps that carry image content.
- :func:`soft_dice_loss`: the label term of the encoder's labelled step, beside cross-entropy.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["logistic_discriminator_loss", "noise_regularisation", "path_length_penalty", "r1_penalty",
           "soft_dice_loss"]


def logistic_discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Mean of ``softplus(fake) + softplus(-real)`` (a scalar): real towards +inf, fake towards -inf."""
    return F.softplus(fake_logits).mean() + F.softplus(-real_logits).mean()


def r1_penalty(outputs: torch.Tensor, inputs: list[torch.Tensor]) -> torch.Tensor:
    """Mean over samples of the squared norm of ``d outputs.sum() / d inputs`` (a scalar).

    ``outputs``: the discriminator's logits on real data (any shape, summed); ``inputs``: the
    tensors they were computed from (``requires_grad`` set), each (B, ...): the gradients of all
    of them count (an image and its label map for a conditional discriminator). Differentiable
    (create_graph): the penalty trains the discriminator.
    """
    grads = torch.autograd.grad(outputs.sum(), inputs, create_graph=True)
    return sum(g.square().flatten(1).sum(1) for g in grads).mean()


def path_length_penalty(images: torch.Tensor, wplus: torch.Tensor, mean_length: torch.Tensor,
                        decay: float = 0.01) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """StyleGAN2's path-length regulariser.

    ``images`` (B, C, H, W), generated from ``wplus`` (B, S, D) in a differentiable graph;
    ``mean_length``: the running mean of the lengths (0-dim tensor). Projects the images on random
    noise y ~ N(0, 1) / sqrt(H W), takes ``J^T y`` (the gradient to W+) and its length per sample
    ``sqrt(mean over styles of the squared norm over D)``. Returns ``(penalty, lengths, new_mean)``:
    the mean squared deviation of the lengths from the running mean (differentiable), the lengths
    (B,) and the running mean moved by ``decay`` towards their mean (detached).
    """
    noise = torch.randn_like(images) / math.sqrt(images.shape[2] * images.shape[3])
    (grad,) = torch.autograd.grad((images * noise).sum(), wplus, create_graph=True)
    lengths = torch.sqrt(grad.square().sum(2).mean(1) + 1e-12)
    new_mean = (mean_length + decay * (lengths.mean() - mean_length)).detach()
    return (lengths - new_mean).square().mean(), lengths.detach(), new_mean


def noise_regularisation(noise_maps: list[torch.Tensor]) -> torch.Tensor:
    """Sum over samples, noise maps (each (B, 1, h, w)) and a pyramid of each (2x average pooling
    down to 8 pixels) of the squared correlation of a sample's map with itself shifted by one pixel,
    down and right (wrapping): zero for white noise, large when a map draws image structure.
    Summed, not averaged, over samples, so each sample's gradient is its own."""
    total = torch.zeros((), device=noise_maps[0].device)
    for noise in noise_maps:
        while True:
            for dim in (2, 3):
                total = total + (noise * torch.roll(noise, 1, dims=dim)).mean(dim=(1, 2, 3)).square().sum()
            if min(noise.shape[-2:]) <= 8:
                break
            noise = F.avg_pool2d(noise, 2)
    return total


def soft_dice_loss(probabilities: torch.Tensor, labels: torch.Tensor, ignore: int = 255) -> torch.Tensor:
    """1 - mean over the classes present in ``labels`` of the soft Dice score (a scalar).

    ``probabilities`` (B, K, H, W) in [0, 1]; ``labels`` (B, H, W) int64 with ``ignore`` left out.
    Dice of class k: ``2 sum(p_k y_k) / (sum(p_k) + sum(y_k))`` over the valid pixels. Returns 0
    (attached) when no pixel is valid.
    """
    valid = labels != ignore
    if not valid.any():
        return probabilities.sum() * 0
    num_classes = probabilities.shape[1]
    one_hot = F.one_hot(torch.where(valid, labels, 0), num_classes).permute(0, 3, 1, 2).to(probabilities.dtype)
    mask = valid.unsqueeze(1).to(probabilities.dtype)
    p, y = probabilities * mask, one_hot * mask
    present = y.sum(dim=(0, 2, 3)) > 0
    dice = 2 * (p * y).sum(dim=(0, 2, 3)) / (p.sum(dim=(0, 2, 3)) + y.sum(dim=(0, 2, 3))).clamp_min(1e-6)
    return 1 - dice[present].mean()
