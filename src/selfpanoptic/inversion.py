"""Reading a label map out of an image with SemanticGAN: encode it into W+, optionally optimise
W+ and the noise maps until the generator redraws the image, and take the label branch's argmax.

The reconstruction loss is a pyramid L1 (:func:`~selfpanoptic.losses.adversarial.pyramid_l1_loss`)
plus an MSE term, in place of the reference's LPIPS, whose ImageNet VGG weights cannot be
downloaded here. Every loss term is summed over the images, so an image's inversion does not
depend on the others in its batch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .losses.adversarial import pyramid_l1_loss
from .losses.gan_regularisation import noise_regularisation
from .models.stylegan import SemanticGenerator
from .gan_settings import InversionSettings

__all__ = ["Inversion", "invert", "inversion_learning_rate", "reconstruction_error", "zero_noise"]


@dataclass
class Inversion:
    """The result of :func:`invert` for a batch: W+ (B, S, D), the reconstructed images (B, 3, H, W)
    in [-1, 1], the label logits (B, K, H, W), and the per-image reconstruction error (B,) before
    (the encoder's start) and after the optimisation (equal with 0 steps)."""

    wplus: torch.Tensor
    images: torch.Tensor
    logits: torch.Tensor
    start_error: torch.Tensor
    error: torch.Tensor


def zero_noise(generator: SemanticGenerator, batch: int, device: torch.device) -> list[torch.Tensor]:
    """All-zero noise maps (B, 1, h, w), one per styled convolution: the encoder's readout is
    deterministic, and inversion starts from them."""
    return [torch.zeros(batch, 1, h, w, device=device) for h, w in generator.noise_shapes()]


def reconstruction_error(reconstructed: torch.Tensor, images: torch.Tensor, mse: float, levels: int = 3) -> torch.Tensor:
    """Per-image pyramid L1 + ``mse`` * mean squared error, (B,) float."""
    return torch.stack([pyramid_l1_loss(r[None], x[None], levels) + mse * F.mse_loss(r, x)
                        for r, x in zip(reconstructed, images)])


def inversion_learning_rate(peak: float, step: int, steps: int) -> float:
    """StyleGAN2 projection's schedule: linear warm-up over the first 5 % of ``steps``, cosine
    ramp-down over the last 25 %, ``peak`` between."""
    t = step / max(steps, 1)
    ramp = min(1.0, (1 - t) / 0.25)
    ramp = 0.5 - 0.5 * math.cos(ramp * math.pi)
    return peak * ramp * min(1.0, t / 0.05)


def invert(generator: SemanticGenerator, encoder: torch.nn.Module, images: torch.Tensor,
           settings: InversionSettings, steps: int | None = None) -> Inversion:
    """Invert ``images`` (B, 3, H, W) in [-1, 1] into ``generator``'s W+ space.

    Starts from the encoder's styles and zero noise; with ``steps`` (default
    ``settings.steps``) > 0 runs Adam on W+ and the noise maps, minimising per image: pyramid L1
    + ``mse`` * MSE + ``noise_regularisation`` * :func:`noise_regularisation` + ``latent`` *
    ||w - E(G(w))||^2 (mean over entries). The generator and encoder are left unchanged.
    """
    steps = settings.steps if steps is None else steps
    generator.requires_grad_(False)
    encoder.requires_grad_(False)
    batch, device = images.shape[0], images.device
    with torch.no_grad():
        start = encoder(images)
        noise = zero_noise(generator, batch, device)
        reconstructed, logits = generator.synthesis(start, noise)
        start_error = reconstruction_error(reconstructed, images, settings.mse)
    if steps == 0:
        return Inversion(start, reconstructed, logits, start_error, start_error)
    wplus = start.clone().requires_grad_(True)
    noise = [n.requires_grad_(True) for n in noise]
    optimizer = torch.optim.Adam([wplus, *noise], lr=settings.lr, betas=(0.9, 0.999))
    for step in range(steps):
        for group in optimizer.param_groups:
            group["lr"] = inversion_learning_rate(settings.lr, step, steps)
        reconstructed, _ = generator.synthesis(wplus, noise)
        loss = reconstruction_error(reconstructed, images, settings.mse).sum()
        if settings.noise_regularisation:
            loss = loss + settings.noise_regularisation * noise_regularisation(noise)
        if settings.latent:
            loss = loss + settings.latent * (wplus - encoder(reconstructed)).square().mean(dim=(1, 2)).sum()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        reconstructed, logits = generator.synthesis(wplus, noise)
        error = reconstruction_error(reconstructed, images, settings.mse)
    return Inversion(wplus.detach(), reconstructed, logits, start_error, error)
