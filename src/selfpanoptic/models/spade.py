"""SPADE: a label-map-to-image generator and its multi-scale discriminator.

After Park et al. 2019, "Semantic Image Synthesis with Spatially-Adaptive Normalization". The
label map is not fed in once and then washed out by normalisation layers: every normalisation
(:class:`SPADE`) re-injects it as a per-pixel scale and shift, so the layout survives to the
output. The discriminator is pix2pixHD's: PatchGANs at several scales that also return their
intermediate features, for the feature-matching loss (:mod:`selfpanoptic.losses.adversarial`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

__all__ = ["SPADE", "MultiscaleDiscriminator", "SPADEGenerator", "SPADEResBlock", "label_one_hot"]

# The style code is mapped onto a fixed coarse grid, then resized to the first features: the
# input size varies, so a Linear cannot produce the (h0, w0) map directly, and a per-channel
# constant alone would be erased by instance norm (it varies over space, this does not).
_STYLE_GRID = (4, 4)


def label_one_hot(labels: torch.Tensor, num_classes: int, ignore: int = 255) -> torch.Tensor:
    """One-hot label map with a last "void" channel.

    labels: (B, H, W) long -> (B, num_classes + 1, H, W) float. Channel ``c < num_classes`` is 1
    where ``labels == c``; the last channel is 1 where ``labels == ignore`` or the label is out of
    ``[0, num_classes)``. Exactly one channel is 1 at every pixel.
    """
    if labels.dim() != 3:
        raise ValueError(f"labels must be (B, H, W), not {tuple(labels.shape)}")
    valid = (labels >= 0) & (labels < num_classes) & (labels != ignore)
    index = torch.where(valid, labels.long(), torch.full_like(labels, num_classes, dtype=torch.long))
    return F.one_hot(index, num_classes + 1).permute(0, 3, 1, 2).float()


def _maybe_spectral(conv: nn.Module, spectral: bool) -> nn.Module:
    return spectral_norm(conv) if spectral else conv


class SPADE(nn.Module):
    """Spatially-adaptive normalisation.

    forward(x (B, channels, h, w), segmap (B, label_channels, H, W) float) -> (B, channels, h, w):
    ``norm(x) * (1 + gamma) + beta``, with ``norm`` parameter-free (batch or instance) and
    gamma, beta predicted per pixel from the segmap resized (nearest) to (h, w). ``1 + gamma``
    so that a zero prediction leaves the normalised input unchanged.
    """

    def __init__(self, channels: int, label_channels: int, hidden: int = 64, norm: str = "batch"):
        super().__init__()
        if norm == "batch":
            self.norm: nn.Module = nn.BatchNorm2d(channels, affine=False)
        elif norm == "instance":
            self.norm = nn.InstanceNorm2d(channels, affine=False)
        else:
            raise ValueError(f"norm must be 'batch' or 'instance', not {norm!r}")
        self.shared = nn.Sequential(nn.Conv2d(label_channels, hidden, 3, padding=1), nn.ReLU(inplace=True))
        self.gamma = nn.Conv2d(hidden, channels, 3, padding=1)
        self.beta = nn.Conv2d(hidden, channels, 3, padding=1)

    def forward(self, x: torch.Tensor, segmap: torch.Tensor) -> torch.Tensor:
        normalised = self.norm(x)
        # nearest keeps the one-hot map one-hot: no blended, made-up classes at region borders
        if segmap.shape[-2:] != x.shape[-2:]:
            segmap = F.interpolate(segmap, size=x.shape[-2:], mode="nearest")
        embedded = self.shared(segmap)
        return normalised * (1 + self.gamma(embedded)) + self.beta(embedded)


class SPADEResBlock(nn.Module):
    """Two (SPADE -> LeakyReLU(0.2) -> 3x3 conv) steps plus a shortcut.

    forward(x (B, in_channels, h, w), segmap (B, label_channels, H, W)) -> (B, out_channels, h, w).
    The middle width is ``min(in_channels, out_channels)`` (as in the paper's code: cheaper when
    narrowing). When the width changes the shortcut is learned (SPADE + 1x1 conv, no bias),
    otherwise it is the identity. ``spectral`` puts spectral norm on the block's convolutions.
    """

    def __init__(self, in_channels: int, out_channels: int, label_channels: int, hidden: int = 64,
                 spectral: bool = False, norm: str = "batch"):
        super().__init__()
        middle = min(in_channels, out_channels)
        self.norm0 = SPADE(in_channels, label_channels, hidden, norm)
        self.conv0 = _maybe_spectral(nn.Conv2d(in_channels, middle, 3, padding=1), spectral)
        self.norm1 = SPADE(middle, label_channels, hidden, norm)
        self.conv1 = _maybe_spectral(nn.Conv2d(middle, out_channels, 3, padding=1), spectral)
        self.learned_shortcut = in_channels != out_channels
        if self.learned_shortcut:
            self.norm_s = SPADE(in_channels, label_channels, hidden, norm)
            self.conv_s = _maybe_spectral(nn.Conv2d(in_channels, out_channels, 1, bias=False), spectral)

    def forward(self, x: torch.Tensor, segmap: torch.Tensor) -> torch.Tensor:
        shortcut = self.conv_s(self.norm_s(x, segmap)) if self.learned_shortcut else x
        y = self.conv0(F.leaky_relu(self.norm0(x, segmap), 0.2))
        y = self.conv1(F.leaky_relu(self.norm1(y, segmap), 0.2))
        return shortcut + y


def level_sizes(height: int, width: int, upsamplings: int) -> list[tuple[int, int]]:
    """The feature sizes of the generator's levels, coarsest first, ending at (height, width).

    Each coarser size is the finer one halved with ceil, so any (height, width) works and
    upsampling to exactly these sizes lands on the input size.
    """
    sizes = [(height, width)]
    for _ in range(upsamplings):
        h, w = sizes[-1]
        sizes.append((math.ceil(h / 2), math.ceil(w / 2)))
    return sizes[::-1]


class SPADEGenerator(nn.Module):
    """Label map to image: SPADE residual blocks from coarse to fine.

    forward(segmap (B, label_channels, H, W) float one-hot, noise (B, style_dim) or None)
    -> (B, 3, H, W) float in [0, 1] (sigmoid). H, W need not be divisible by ``2**upsamplings``.

    The segmap, downsampled (nearest) to the coarsest level, goes through a 3x3 conv; then one
    :class:`SPADEResBlock` per level (``upsamplings + 1`` of them) with nearest upsampling in
    between. Widths start at ``channels * 2**min(upsamplings, 3)`` and halve per level
    down to ``channels``. With ``style_dim > 0`` a code z (drawn from N(0, 1) when
    ``noise`` is None) is added to the first features, so one label map renders several looks;
    with ``style_dim == 0`` the generator is deterministic in eval mode.
    """

    def __init__(self, label_channels: int, channels: int = 64, upsamplings: int = 4, style_dim: int = 0,
                 spectral: bool = True, norm: str = "batch"):
        super().__init__()
        if upsamplings < 0:
            raise ValueError(f"upsamplings must be >= 0, not {upsamplings}")
        self.upsamplings = upsamplings
        self.style_dim = style_dim
        # level 0 is the coarsest. Width starts at (at most) 8x and halves per level down to
        # ``channels``: a cap of 8x on several coarse levels (the paper's 16x on four) would put
        # most of the parameters where the map is only a few pixels wide
        widths = [channels * 2 ** max(min(upsamplings, 3) - i, 0) for i in range(upsamplings + 1)]
        self.head = nn.Conv2d(label_channels, widths[0], 3, padding=1)
        self.style = nn.Linear(style_dim, widths[0] * _STYLE_GRID[0] * _STYLE_GRID[1]) if style_dim > 0 else None
        # the label embedding inside each SPADE is as wide as the features it modulates (at most
        # 64): at the full-size level a 64-wide embedding would cost more than the block itself
        self.blocks = nn.ModuleList(
            SPADEResBlock(widths[max(i - 1, 0)], widths[i], label_channels, hidden=min(64, widths[i]),
                          spectral=spectral, norm=norm)
            for i in range(upsamplings + 1)
        )
        self.out = nn.Conv2d(widths[-1], 3, 3, padding=1)

    def forward(self, segmap: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        if segmap.dim() != 4:
            raise ValueError(f"segmap must be (B, C, H, W), not {tuple(segmap.shape)}")
        sizes = level_sizes(segmap.shape[-2], segmap.shape[-1], self.upsamplings)
        x = self.head(F.interpolate(segmap, size=sizes[0], mode="nearest"))
        if self.style is not None:
            if noise is None:
                noise = torch.randn(segmap.shape[0], self.style_dim, device=segmap.device, dtype=segmap.dtype)
            grid = self.style(noise).view(segmap.shape[0], -1, *_STYLE_GRID)
            x = x + F.interpolate(grid, size=sizes[0], mode="bilinear", align_corners=False)
        elif noise is not None:
            raise ValueError("noise given to a generator built with style_dim=0")
        for i, block in enumerate(self.blocks):
            if i > 0:
                x = F.interpolate(x, size=sizes[i], mode="nearest")
            x = block(x, segmap)
        return torch.sigmoid(self.out(F.leaky_relu(x, 0.2)))


class _PatchGAN(nn.Module):
    """One scale of :class:`MultiscaleDiscriminator`; forward returns every layer's output."""

    def __init__(self, in_channels: int, channels: int, layers: int, spectral: bool):
        super().__init__()
        # padding 2 (pix2pixHD's): a 4x4 conv never shrinks a map to nothing, whatever its size
        steps = [nn.Sequential(_maybe_spectral(nn.Conv2d(in_channels, channels, 4, 2, 2), spectral),
                               nn.LeakyReLU(0.2, inplace=True))]
        width = channels
        for _ in range(layers - 1):
            wider = min(2 * width, 8 * channels)
            steps.append(nn.Sequential(_maybe_spectral(nn.Conv2d(width, wider, 4, 2, 2), spectral),
                                       nn.InstanceNorm2d(wider, affine=False), nn.LeakyReLU(0.2, inplace=True)))
            width = wider
        # the logit layer is left without spectral norm, as in pix2pixHD/SPADE
        steps.append(nn.Conv2d(width, 1, 4, 1, 2))
        self.steps = nn.ModuleList(steps)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = []
        for step in self.steps:
            x = step(x)
            features.append(x)
        return features


class MultiscaleDiscriminator(nn.Module):
    """``scales`` conditional PatchGANs on ever coarser copies of (segmap, image).

    forward(segmap (B, Cs, H, W), image (B, Ci, H, W)) with ``Cs + Ci == in_channels``
    -> one list per scale (full size first) of its ``layers`` intermediate feature maps followed by
    its logit map (B, 1, h, w), LAST. Each PatchGAN: a stride-2 4x4 conv and LeakyReLU(0.2), then
    ``layers - 1`` stride-2 convs with instance norm (no affine) and LeakyReLU, width doubling up
    to ``8 * channels``, then a stride-1 4x4 conv to one logit per patch. Between scales the input
    is average-pooled (3x3, stride 2).
    """

    def __init__(self, in_channels: int, channels: int = 64, layers: int = 3, scales: int = 2,
                 spectral: bool = True):
        super().__init__()
        if layers < 1 or scales < 1:
            raise ValueError(f"layers and scales must be >= 1, not {layers} and {scales}")
        self.scales = nn.ModuleList(_PatchGAN(in_channels, channels, layers, spectral) for _ in range(scales))

    def forward(self, segmap: torch.Tensor, image: torch.Tensor) -> list[list[torch.Tensor]]:
        x = torch.cat([segmap, image], dim=1)
        outputs = []
        for i, scale in enumerate(self.scales):
            if i > 0:
                # count_include_pad=False: border pixels are not darkened by the zero padding
                x = F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)
            outputs.append(scale(x))
        return outputs
