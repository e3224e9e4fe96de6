"""An encoder from images to the generator's W+ styles (SemanticGAN's, after pSp), in plain PyTorch.

A small convolutional pyramid (stride-2 stages with group norm) reads the image; as in pSp, the
coarsest feature map predicts the first styles (layout), the middle one the next, the finest the
rest (detail). Each group of styles comes from its map's global average and maximum through a
linear layer, and is added to the generator's mean style, so an untrained encoder already starts
at the average image.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["StyleEncoder", "style_groups"]


def style_groups(num_styles: int) -> tuple[int, int, int]:
    """How many styles the coarse, middle and fine maps predict: about 3 : 4 : rest of pSp's 18,
    scaled to ``num_styles``, each at least 1 (``num_styles`` >= 3)."""
    coarse = max(1, round(num_styles * 3 / 18))
    middle = max(1, round(num_styles * 4 / 18))
    return coarse, middle, num_styles - coarse - middle


class StyleEncoder(nn.Module):
    """forward(images (B, 3, H, W) in [-1, 1]) -> W+ styles (B, num_styles, style_dim).

    ``stages`` stride-2 stages of width ``channels * 2**i`` (capped at ``max_channels``); the styles
    come from the last three stages' maps. ``mean_style`` (1, style_dim): the generator's, added to
    the prediction (a buffer, saved with the encoder)."""

    def __init__(self, num_styles: int, style_dim: int, stages: int = 4, channels: int = 32, max_channels: int = 256):
        super().__init__()
        if stages < 3:
            raise ValueError(f"the encoder needs at least 3 stages, not {stages}")
        widths = [min(max_channels, channels * 2 ** i) for i in range(stages)]
        layers, before = [], 3
        for width in widths:
            layers.append(nn.Sequential(
                nn.Conv2d(before, width, 3, stride=2, padding=1), nn.GroupNorm(min(8, width), width), nn.LeakyReLU(0.2),
                nn.Conv2d(width, width, 3, padding=1), nn.GroupNorm(min(8, width), width), nn.LeakyReLU(0.2)))
            before = width
        self.stages = nn.ModuleList(layers)
        self.groups = style_groups(num_styles)
        maps = widths[-1:-4:-1]  # coarse, middle, fine
        self.heads = nn.ModuleList(nn.Linear(2 * width, count * style_dim) for width, count in zip(maps, self.groups))
        for head in self.heads:
            nn.init.zeros_(head.bias)
            head.weight.data.mul_(0.1)  # start near the mean style
        self.num_styles, self.style_dim = num_styles, style_dim
        self.register_buffer("mean_style", torch.zeros(1, style_dim))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        features = []
        x = images
        for stage in self.stages:
            x = stage(x)
            features.append(x)
        styles = []
        for feature, head, count in zip(features[::-1], self.heads, self.groups):
            pooled = torch.cat([feature.mean(dim=(2, 3)), F.adaptive_max_pool2d(feature, 1).flatten(1)], dim=1)
            styles.append(head(pooled).view(-1, count, self.style_dim))
        return torch.cat(styles, dim=1) + self.mean_style.unsqueeze(1)
