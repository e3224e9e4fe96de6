"""A StyleGAN2-style generator of images *and* their label maps (SemanticGAN's), in plain PyTorch.

After Karras et al. 2020 (StyleGAN2) and Li et al. 2021 (SemanticGAN). A mapping network turns a
random code ``z`` into a style ``w``; the synthesis network grows a learned constant through
``levels`` 2x up-sampling steps, each two modulated 3x3 convolutions whose weights are scaled by
the layer's style (and demodulated), plus per-pixel noise. Every level has two 1x1 output heads
that read the same style: ``ToRGB`` (an image) and ``ToSeg`` (label logits); each adds its output
to the up-sampled output of the level before (the "skip" architecture), so coarse levels lay out
the scene and fine levels add detail, in the image and the label map alike.

The reference's CUDA-compiled ops are replaced by plain ones: bilinear up-sampling before a
modulated convolution instead of a transposed convolution with a blur kernel, and a bias plus
``leaky_relu(0.2) * sqrt(2)`` instead of the fused activation. Weights use the equalised learning
rate (scaled at run time by ``1 / sqrt(fan_in)``), the mapping network a 100x smaller rate.

The W+ space: one style per layer, ``(B, num_styles, style_dim)``, ``num_styles = 2 * levels + 2``
(the base convolution and ToRGB/ToSeg, then per level two convolutions and the heads). The
encoder (:mod:`~selfpanoptic.models.style_encoder`) predicts W+ and test-time inversion
optimises it.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ModulatedConv2d", "SemanticGenerator", "StyleOutput", "level_widths"]

_GAIN = math.sqrt(2.0)


def level_widths(channels: int, max_channels: int, levels: int) -> list[int]:
    """Widths of the constant and of each level, coarse to fine: ``channels`` at the finest level,
    doubling per coarser level up to ``max_channels``. ``levels + 1`` integers."""
    return [min(max_channels, channels * 2 ** (levels - i)) for i in range(levels + 1)]


class EqualLinear(nn.Module):
    """A linear layer with the equalised learning rate: weights drawn N(0, 1 / lr_mul) and scaled by
    ``lr_mul / sqrt(in_features)`` at run time, so Adam's steps are alike in every layer.
    ``activate``: bias then ``leaky_relu(0.2) * sqrt(2)``."""

    def __init__(self, in_features: int, out_features: int, bias_init: float = 0.0, lr_mul: float = 1.0,
                 activate: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_mul)
        self.bias = nn.Parameter(torch.full((out_features,), float(bias_init) / lr_mul))
        self.scale, self.lr_mul, self.activate = lr_mul / math.sqrt(in_features), lr_mul, activate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.linear(x, self.weight * self.scale, self.bias * self.lr_mul)
        return F.leaky_relu(out, 0.2) * _GAIN if self.activate else out


class ModulatedConv2d(nn.Module):
    """A convolution whose weights each sample's style scales per input channel.

    forward(x (B, in_channels, h, w), style (B, style_dim)) -> (B, out_channels, h', w'), with
    ``h' = 2h`` when ``upsample`` (bilinear, before the convolution), else ``h``. The style goes
    through an affine layer (bias 1: an untrained layer leaves the weights as they are) to one
    scale per input channel. ``demodulate`` rescales each output channel's weights to unit norm,
    so the output keeps unit variance for unit-variance input (what instance norm did in StyleGAN).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel: int, style_dim: int, demodulate: bool = True,
                 upsample: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(1, out_channels, in_channels, kernel, kernel))
        self.modulation = EqualLinear(style_dim, in_channels, bias_init=1.0)
        self.scale = 1 / math.sqrt(in_channels * kernel * kernel)
        self.padding, self.demodulate, self.upsample = kernel // 2, demodulate, upsample
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        batch, in_channels, height, width = x.shape
        scales = self.modulation(style).view(batch, 1, in_channels, 1, 1)
        weight = self.scale * self.weight * scales
        if self.demodulate:
            weight = weight * torch.rsqrt(weight.square().sum(dim=(2, 3, 4), keepdim=True) + 1e-8)
        if self.upsample:
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
            height, width = 2 * height, 2 * width
        # one grouped convolution: each sample is a group with its own weights
        weight = weight.view(batch * self.out_channels, in_channels, *weight.shape[-2:])
        out = F.conv2d(x.reshape(1, batch * in_channels, height, width), weight, padding=self.padding, groups=batch)
        return out.view(batch, self.out_channels, height, width)


class StyledConv(nn.Module):
    """Modulated 3x3 convolution, per-pixel noise times a learned weight, bias and activation.

    forward(x, style (B, style_dim), noise (B, 1, h', w') or None: fresh N(0, 1) noise)."""

    def __init__(self, in_channels: int, out_channels: int, style_dim: int, upsample: bool = False):
        super().__init__()
        self.conv = ModulatedConv2d(in_channels, out_channels, 3, style_dim, upsample=upsample)
        self.noise_weight = nn.Parameter(torch.zeros(1))
        self.bias = nn.Parameter(torch.zeros(1, out_channels, 1, 1))

    def forward(self, x: torch.Tensor, style: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        out = self.conv(x, style)
        if noise is None:
            noise = torch.randn(out.shape[0], 1, *out.shape[-2:], device=out.device, dtype=out.dtype)
        return F.leaky_relu(out + self.noise_weight * noise + self.bias, 0.2) * _GAIN


class StyleOutput(nn.Module):
    """An output head of a level (ToRGB, ToSeg): a modulated 1x1 convolution without demodulation
    plus a bias, added to the bilinearly 2x up-sampled output of the level before.

    forward(x (B, C, h, w), style (B, style_dim), skip (B, out_channels, h/2, w/2) or None)
    -> (B, out_channels, h, w)."""

    def __init__(self, in_channels: int, out_channels: int, style_dim: int):
        super().__init__()
        self.conv = ModulatedConv2d(in_channels, out_channels, 1, style_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(1, out_channels, 1, 1))

    def forward(self, x: torch.Tensor, style: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        out = self.conv(x, style) + self.bias
        if skip is not None:
            out = out + F.interpolate(skip, size=out.shape[-2:], mode="bilinear", align_corners=False)
        return out


class SemanticGenerator(nn.Module):
    """Images and label logits from random codes or W+ styles.

    Parameters
    ----------
    num_classes : int
        Label channels of ``ToSeg`` (the trainIds; no void channel: every pixel gets a class).
    size : (int, int)
        (height, width) of the output; each must be divisible by ``2 ** levels``.
    levels : int
        2x up-sampling levels after the constant (at ``size / 2 ** levels``).
    channels, max_channels : int
        Width of the finest level, and the cap of the coarser ones (:func:`level_widths`).
    style_dim, mapping_layers : int
        Length of ``z`` and ``w``; layers of the mapping network (learning rate x 0.01).

    ``forward(z (B, style_dim), mix (B, style_dim) or None, cut)`` -> ``(image, logits, wplus)``:
    the image (B, 3, H, W) in about [-1, 1], label logits (B, num_classes, H, W) and the W+ styles
    (B, num_styles, style_dim) it used (``mix``'s ``w`` from style ``cut`` on: style mixing).
    :meth:`synthesis` renders given W+ styles.
    """

    def __init__(self, num_classes: int, size: tuple[int, int], levels: int = 4, channels: int = 16,
                 max_channels: int = 128, style_dim: int = 128, mapping_layers: int = 4):
        super().__init__()
        height, width = size
        if height % 2 ** levels or width % 2 ** levels:
            raise ValueError(f"the size {height}x{width} is not divisible by 2**levels = {2 ** levels}")
        self.num_classes, self.size, self.levels, self.style_dim = num_classes, (height, width), levels, style_dim
        self.num_styles = 2 * levels + 2
        widths = level_widths(channels, max_channels, levels)
        self.base_size = (height // 2 ** levels, width // 2 ** levels)
        self.mapping = nn.Sequential(*[EqualLinear(style_dim, style_dim, lr_mul=0.01, activate=True)
                                       for _ in range(mapping_layers)])
        self.constant = nn.Parameter(torch.randn(1, widths[0], *self.base_size))
        self.base_conv = StyledConv(widths[0], widths[0], style_dim)
        self.convs, self.to_rgb, self.to_seg = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        self.to_rgb.append(StyleOutput(widths[0], 3, style_dim))
        self.to_seg.append(StyleOutput(widths[0], num_classes, style_dim))
        for before, width_ in zip(widths[:-1], widths[1:]):
            self.convs.append(StyledConv(before, width_, style_dim, upsample=True))
            self.convs.append(StyledConv(width_, width_, style_dim))
            self.to_rgb.append(StyleOutput(width_, 3, style_dim))
            self.to_seg.append(StyleOutput(width_, num_classes, style_dim))

    def noise_shapes(self) -> list[tuple[int, int]]:
        """(h, w) of the noise map of each styled convolution, in order (base, then 2 per level)."""
        height, width = self.base_size
        return [(height, width)] + [(height * 2 ** (i // 2 + 1), width * 2 ** (i // 2 + 1))
                                    for i in range(2 * self.levels)]

    def mean_style(self, count: int = 4096) -> torch.Tensor:
        """The mean ``w`` of ``count`` random codes (1, style_dim): the truncation trick's centre and
        the encoder's starting point. Draws from torch's global RNG."""
        device = self.constant.device
        with torch.no_grad():
            return self.mapping(_normalise(torch.randn(count, self.style_dim, device=device))).mean(0, keepdim=True)

    def styles(self, z: torch.Tensor, mix: torch.Tensor | None = None, cut: int | None = None,
               truncation: float = 1.0, centre: torch.Tensor | None = None) -> torch.Tensor:
        """W+ styles (B, num_styles, style_dim) of codes ``z``; ``mix``'s from style ``cut`` on;
        ``truncation`` < 1 pulls each ``w`` towards ``centre`` (:meth:`mean_style`)."""
        w = self.mapping(_normalise(z))
        if truncation != 1.0:
            w = centre + truncation * (w - centre)
        wplus = w.unsqueeze(1).repeat(1, self.num_styles, 1)
        if mix is not None:
            w2 = self.mapping(_normalise(mix))
            if truncation != 1.0:
                w2 = centre + truncation * (w2 - centre)
            wplus = torch.cat([wplus[:, :cut], w2.unsqueeze(1).repeat(1, self.num_styles - cut, 1)], dim=1)
        return wplus

    def synthesis(self, wplus: torch.Tensor, noise: list[torch.Tensor] | None = None
                  ) -> tuple[torch.Tensor, torch.Tensor]:
        """Image (B, 3, H, W) and label logits (B, num_classes, H, W) of W+ styles
        (B, num_styles, style_dim). ``noise``: one (B, 1, h, w) map per styled convolution
        (:meth:`noise_shapes`), or None for fresh random noise."""
        if wplus.dim() != 3 or wplus.shape[1:] != (self.num_styles, self.style_dim):
            raise ValueError(f"W+ styles must be (B, {self.num_styles}, {self.style_dim}), not {tuple(wplus.shape)}")
        noise = noise if noise is not None else [None] * (1 + len(self.convs))
        x = self.constant.expand(wplus.shape[0], -1, -1, -1)
        x = self.base_conv(x, wplus[:, 0], noise[0])
        image, logits = self.to_rgb[0](x, wplus[:, 1]), self.to_seg[0](x, wplus[:, 1])
        for level in range(self.levels):
            up, conv = self.convs[2 * level], self.convs[2 * level + 1]
            x = up(x, wplus[:, 2 * level + 1], noise[2 * level + 1])
            x = conv(x, wplus[:, 2 * level + 2], noise[2 * level + 2])
            style = wplus[:, 2 * level + 3]
            image, logits = self.to_rgb[level + 1](x, style, image), self.to_seg[level + 1](x, style, logits)
        return image, logits

    def forward(self, z: torch.Tensor, mix: torch.Tensor | None = None, cut: int | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        wplus = self.styles(z, mix, cut)
        image, logits = self.synthesis(wplus)
        return image, logits, wplus


def _normalise(z: torch.Tensor) -> torch.Tensor:
    """Pixel norm of the codes: each ``z`` scaled to unit mean square (StyleGAN's first mapping step)."""
    return z * torch.rsqrt(z.square().mean(dim=1, keepdim=True) + 1e-8)
