"""Segmentation heads and their building blocks, on an encoder's four-level feature dict.

Every encoder (:func:`~selfpanoptic.models.encoders.build_encoder`) returns
``{"layer1": stride 4, "layer2": stride 8, "layer3": stride 16, "layer4": stride 32 (a ResNet:
its output stride)}`` with the channel counts in its ``channels`` attribute. The heads here:

- :class:`ASPPSum`: DeepLabV2's classifier (dilated 3x3 convolutions to class scores, summed).
- :class:`ASPP`: DeepLabV3's ASPP, optionally depthwise-separable and without image pooling
  (the form DAFormer's fusion uses).
- :class:`DAFormerHead`: DAFormer's decoder (Hoyer et al., CVPR 2022, ``daformer_sepaspp``).
- :class:`SegFormerHead`: SegFormer's all-MLP decoder (Xie et al., NeurIPS 2021).

The two multi-level heads return logits at the layer1 (stride 4) resolution; the caller
upsamples them to the input size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

LEVELS = ("layer1", "layer2", "layer3", "layer4")
"""The encoder's feature maps the multi-level heads read, finest first."""


def _conv_bn_relu(cin: int, cout: int, kernel: int = 3, dilation: int = 1, groups: int = 1) -> nn.Sequential:
    """Convolution (padding keeps the size), BatchNorm, ReLU. (B, cin, h, w) -> (B, cout, h, w)."""
    padding = dilation * (kernel // 2)
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, padding=padding, dilation=dilation, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


def _separable_conv(cin: int, cout: int, dilation: int) -> nn.Sequential:
    """mmcv's ``DepthwiseSeparableConvModule``: a depthwise dilated 3x3 conv-BN-ReLU, then a
    pointwise 1x1 conv-BN-ReLU. (B, cin, h, w) -> (B, cout, h, w)."""
    return nn.Sequential(_conv_bn_relu(cin, cin, 3, dilation, groups=cin), _conv_bn_relu(cin, cout, 1))


class ASPPSum(nn.Module):
    """DeepLabV2's classifier: one dilated 3x3 conv per rate, outputs summed.

    forward(x: (B, cin, h, w)) -> (B, num_classes, h, w).
    """

    def __init__(self, cin: int, num_classes: int, rates: list[int]):
        super().__init__()
        self.branches = nn.ModuleList(nn.Conv2d(cin, num_classes, 3, padding=r, dilation=r) for r in rates)
        for conv in self.branches:
            nn.init.normal_(conv.weight, 0, 0.01)
            nn.init.zeros_(conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return sum(branch(x) for branch in self.branches)


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling: a 1x1 branch, a dilated 3x3 branch per rate and (with
    ``pool``) image pooling, concatenated and projected.

    forward(x: (B, cin, h, w)) -> (B, cout, h, w).

    Parameters
    ----------
    cin, cout:
        Input and output (and branch) channels.
    rates:
        Dilations of the 3x3 branches (the 1x1 branch is always there: dilation 1).
    separable:
        Depthwise-separable 3x3 branches (depthwise 3x3 + pointwise 1x1, each with BN and ReLU)
        instead of full 3x3 convolutions: DAFormer's ``sep=True``.
    pool:
        Add the image-pooling branch (DeepLabV3's; DAFormer uses ``pool=False``).
    project_kernel:
        Kernel of the projection after the concatenation: 1 in DeepLabV3, 3 in DAFormer's
        ``ASPPWrapper`` bottleneck.
    """

    def __init__(self, cin: int, cout: int, rates: list[int], separable: bool = False, pool: bool = True,
                 project_kernel: int = 1):
        super().__init__()
        # the 1x1 branch first: modules draw their initial weights in creation order, and this is
        # the order the published tables' models were initialised in
        first = _conv_bn_relu(cin, cout, 1)
        dilated = [_separable_conv(cin, cout, r) if separable else _conv_bn_relu(cin, cout, 3, r) for r in rates]
        self.branches = nn.ModuleList([first] + dilated)
        # no BatchNorm on the pooled branch: on a 1x1 map it fails for a batch of one image
        self.pool = (nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(cin, cout, 1, bias=False), nn.ReLU(inplace=True))
                     if pool else None)
        self.project = _conv_bn_relu(cout * (len(rates) + 1 + int(pool)), cout, project_kernel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = [branch(x) for branch in self.branches]
        if self.pool is not None:
            outs.append(self.pool(x).expand(-1, -1, *x.shape[-2:]))
        return self.project(torch.cat(outs, dim=1))


def _embed_levels(embeds: nn.ModuleDict, feats: dict[str, torch.Tensor], order: tuple[str, ...]) -> torch.Tensor:
    """Embed each level with its 1x1 layer, upsample to layer1's size and concatenate in ``order``.

    (B, C_l, h_l, w_l) per level -> (B, len(order) * E, h_1, w_1).
    """
    size = feats["layer1"].shape[-2:]
    outs = []
    for name in order:
        y = embeds[name](feats[name])
        if y.shape[-2:] != size:
            y = F.interpolate(y, size=size, mode="bilinear", align_corners=False)
        outs.append(y)
    return torch.cat(outs, dim=1)


def _linear_embeddings(channels: dict[str, int], embed_channels: int) -> nn.ModuleDict:
    """One linear embedding per level: SegFormer's ``MLP`` (``nn.Linear`` on the tokens) is a
    1x1 convolution with bias on the map, so no reshaping to tokens and back is needed."""
    return nn.ModuleDict({name: nn.Conv2d(channels[name], embed_channels, 1) for name in LEVELS})


class DAFormerHead(nn.Module):
    """DAFormer's decoder (``configs/_base_/models/daformer_sepaspp_mitb5.py``).

    Each level gets a linear (1x1, with bias, no norm or activation) embedding to
    ``embed_channels``; all are upsampled to layer1's size and concatenated (4 * E channels), and
    a depthwise-separable ASPP fuses them: a 1x1 branch plus separable 3x3 branches at
    dilations 6, 12, 18, no image pooling, concatenated and projected by a 3x3 conv-BN-ReLU to
    E channels. Then Dropout2d(0.1) and a 1x1 classifier.

    forward(feats: the encoder's dict, layer1 of shape (B, C_1, h, w)) -> logits (B, num_classes, h, w).
    """

    DILATIONS = (6, 12, 18)
    """Dilations of the separable branches (DAFormer's ``dilations=(1, 6, 12, 18)``; 1 is the 1x1 branch)."""

    def __init__(self, channels: dict[str, int], num_classes: int, embed_channels: int = 256, dropout: float = 0.1):
        super().__init__()
        self.embed = _linear_embeddings(channels, embed_channels)
        self.fuse = ASPP(len(LEVELS) * embed_channels, embed_channels, list(self.DILATIONS), separable=True,
                         pool=False, project_kernel=3)
        self.dropout = nn.Dropout2d(dropout)
        self.classifier = nn.Conv2d(embed_channels, num_classes, 1)

    def forward(self, feats: dict[str, torch.Tensor]) -> torch.Tensor:
        y = self.fuse(_embed_levels(self.embed, feats, LEVELS))
        return self.classifier(self.dropout(y))


class SegFormerHead(nn.Module):
    """SegFormer's all-MLP decoder.

    Each level gets a linear (1x1, with bias) embedding to ``embed_channels``; all are upsampled
    to layer1's size and concatenated coarsest first (SegFormer's ``[c4, c3, c2, c1]``), fused by
    a 1x1 conv-BN-ReLU to E channels, then Dropout2d(0.1) and a 1x1 classifier.

    forward(feats: the encoder's dict, layer1 of shape (B, C_1, h, w)) -> logits (B, num_classes, h, w).
    """

    def __init__(self, channels: dict[str, int], num_classes: int, embed_channels: int = 256, dropout: float = 0.1):
        super().__init__()
        self.embed = _linear_embeddings(channels, embed_channels)
        self.fuse = _conv_bn_relu(len(LEVELS) * embed_channels, embed_channels, 1)
        self.dropout = nn.Dropout2d(dropout)
        self.classifier = nn.Conv2d(embed_channels, num_classes, 1)

    def forward(self, feats: dict[str, torch.Tensor]) -> torch.Tensor:
        y = self.fuse(_embed_levels(self.embed, feats, LEVELS[::-1]))
        return self.classifier(self.dropout(y))


__all__ = ["ASPP", "ASPPSum", "DAFormerHead", "LEVELS", "SegFormerHead"]
