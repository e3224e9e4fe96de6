"""The losses of SPADE-style label-to-image training: hinge GAN terms, pix2pixHD feature matching,
and a pyramid L1 reconstruction term.

The GAN terms take the output of :class:`~selfpanoptic.models.spade.MultiscaleDiscriminator`:
one list per scale of its intermediate feature maps with the logit map last. The pyramid L1
stands in for the paper's VGG perceptual loss, which needs pretrained weights this project
cannot download.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["feature_matching_loss", "hinge_discriminator_loss", "hinge_generator_loss", "pyramid_l1_loss"]

Outputs = list[list[torch.Tensor]]


def _check_scales(real: Outputs, fake: Outputs) -> None:
    if len(real) != len(fake) or not real:
        raise ValueError(f"real and fake must have the same, non-zero number of scales ({len(real)} vs {len(fake)})")


def hinge_discriminator_loss(real: Outputs, fake: Outputs) -> torch.Tensor:
    """The discriminator's hinge loss (a scalar), averaged over scales.

    Per scale: ``mean(relu(1 - real_logit)) + mean(relu(1 + fake_logit))`` on the last element of
    each scale's list. Zero once real logits are >= 1 and fake ones <= -1: a margin, so a
    discriminator that is already sure stops pushing (unlike BCE, whose gradient never vanishes).
    """
    _check_scales(real, fake)
    terms = [F.relu(1 - r[-1]).mean() + F.relu(1 + f[-1]).mean() for r, f in zip(real, fake)]
    return torch.stack(terms).mean()


def hinge_generator_loss(fake: Outputs) -> torch.Tensor:
    """The generator's hinge loss (a scalar): ``-mean(fake_logit)`` averaged over scales."""
    if not fake:
        raise ValueError("fake has no scales")
    return torch.stack([-f[-1].mean() for f in fake]).mean()


def feature_matching_loss(real: Outputs, fake: Outputs) -> torch.Tensor:
    """pix2pixHD's feature matching (a scalar): per scale, the sum over the intermediate features
    (all but the logit) of the mean L1 between fake and real features, then averaged over scales.

    The real features are detached: this term trains the generator to match statistics of real
    images as the discriminator sees them, not the discriminator to make them easy to match.
    """
    _check_scales(real, fake)
    terms = []
    for r, f in zip(real, fake):
        if len(r) != len(f):
            raise ValueError(f"real and fake differ in feature count at a scale ({len(r)} vs {len(f)})")
        layer_terms = [F.l1_loss(ff, rf.detach()) for rf, ff in zip(r[:-1], f[:-1])]
        # a scale with only a logit contributes 0 (still attached to the graph through fake)
        terms.append(torch.stack(layer_terms).sum() if layer_terms else f[-1].sum() * 0)
    return torch.stack(terms).mean()


def pyramid_l1_loss(generated: torch.Tensor, target: torch.Tensor, levels: int = 3) -> torch.Tensor:
    """Mean L1 over an image pyramid (a scalar).

    ``generated``, ``target``: (B, 3, H, W) float. The mean of the L1 errors at full size and at
    ``levels - 1`` successive 2x average-pooled sizes (ceil, so odd sizes lose no border; pooling
    stops early once a side is 1 pixel). The coarse levels weight colour and low frequencies, which
    per-pixel L1 at full size alone under-rewards.
    """
    if generated.shape != target.shape:
        raise ValueError(f"generated {tuple(generated.shape)} and target {tuple(target.shape)} differ in shape")
    if levels < 1:
        raise ValueError(f"levels must be >= 1, not {levels}")
    terms = [F.l1_loss(generated, target)]
    for _ in range(levels - 1):
        if min(generated.shape[-2:]) < 2:
            break
        # ceil_mode with no padding averages a clipped border window over its real pixels only
        generated = F.avg_pool2d(generated, 2, ceil_mode=True)
        target = F.avg_pool2d(target, 2, ceil_mode=True)
        terms.append(F.l1_loss(generated, target))
    return torch.stack(terms).mean()
