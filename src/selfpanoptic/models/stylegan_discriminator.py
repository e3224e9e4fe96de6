"""StyleGAN2's residual image discriminator with the minibatch standard deviation, in plain PyTorch.

SemanticGAN's ``D_r``: it sees images only (labelled and unlabelled alike) and says how real they
look. Residual blocks halve the size (a 3x3 convolution, then 2x average pooling and a 3x3
convolution, plus a pooled 1x1 shortcut, summed and divided by sqrt(2)) down to the generator's
constant size; then the standard deviation of each feature over a group of samples is appended
as one more channel, so that a generator producing too little variety is seen through.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .stylegan import EqualLinear, level_widths

__all__ = ["ResidualDiscriminator", "minibatch_stddev"]

_GAIN = math.sqrt(2.0)


def minibatch_stddev(x: torch.Tensor, group: int = 4) -> torch.Tensor:
    """Append one channel: the standard deviation over groups of samples, averaged over channels
    and pixels. x (B, C, h, w) -> (B, C + 1, h, w). The group is the largest divisor of B not above
    ``group``; every sample of a group gets its group's value."""
    batch, channels, height, width = x.shape
    size = max(g for g in range(1, min(group, batch) + 1) if batch % g == 0)
    y = x.view(size, batch // size, channels, height, width)
    std = torch.sqrt(y.var(dim=0, unbiased=False) + 1e-8).mean(dim=(1, 2, 3))  # (B / size,)
    std = std.view(1, batch // size, 1, 1, 1).expand(size, -1, 1, height, width).reshape(batch, 1, height, width)
    return torch.cat([x, std], dim=1)


class _EqualConv(nn.Module):
    """A convolution with the equalised learning rate; ``activate``: bias then scaled leaky ReLU."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, activate: bool = True, bias: bool = True):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.scale, self.padding, self.activate = 1 / math.sqrt(in_channels * kernel * kernel), kernel // 2, activate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.conv2d(x, self.weight * self.scale, self.bias, padding=self.padding)
        return F.leaky_relu(out, 0.2) * _GAIN if self.activate else out


class _ResBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv1 = _EqualConv(in_channels, in_channels, 3)
        self.conv2 = _EqualConv(in_channels, out_channels, 3)
        self.skip = _EqualConv(in_channels, out_channels, 1, activate=False, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv2(F.avg_pool2d(self.conv1(x), 2))
        return (out + self.skip(F.avg_pool2d(x, 2))) / _GAIN


class ResidualDiscriminator(nn.Module):
    """forward(images (B, in_channels, H, W)) -> one real/fake logit per image (B, 1).

    ``size``, ``levels``, ``channels``, ``max_channels`` as the generator's
    (:class:`~selfpanoptic.models.stylegan.SemanticGenerator`): ``levels`` residual blocks bring the
    image down to ``size / 2 ** levels``, widths mirrored from the generator's."""

    def __init__(self, size: tuple[int, int], levels: int = 4, channels: int = 16, max_channels: int = 128,
                 in_channels: int = 3, stddev_group: int = 4):
        super().__init__()
        height, width = size
        if height % 2 ** levels or width % 2 ** levels:
            raise ValueError(f"the size {height}x{width} is not divisible by 2**levels = {2 ** levels}")
        widths = level_widths(channels, max_channels, levels)[::-1]  # fine to coarse
        self.from_rgb = _EqualConv(in_channels, widths[0], 1)
        self.blocks = nn.Sequential(*[_ResBlock(a, b) for a, b in zip(widths[:-1], widths[1:])])
        self.stddev_group = stddev_group
        self.final_conv = _EqualConv(widths[-1] + 1, widths[-1], 3)
        base = (height // 2 ** levels) * (width // 2 ** levels)
        self.final = nn.Sequential(EqualLinear(widths[-1] * base, widths[-1], activate=True),
                                   EqualLinear(widths[-1], 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.from_rgb(images))
        x = self.final_conv(minibatch_stddev(x, self.stddev_group))
        return self.final(x.flatten(1))
