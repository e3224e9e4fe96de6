"""DeepLab semantic segmentation heads (V2, V3, V3+) on a dilated ResNet encoder.

- V2: ASPP as parallel 3x3 convolutions with rates (6, 12, 18, 24) straight to class scores, summed.
- V3: ASPP with a 1x1 branch, 3x3 branches at the rates and image pooling, concatenated,
  projected, then a 3x3 convolution and the classifier.
- V3+: the V3 ASPP plus a decoder that fuses stride-4 low-level features before classifying.

All return logits (B, C, H, W) at the input resolution (bilinear upsampling).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InputError
from .backbones import ResNetEncoder


def _conv_bn_relu(cin: int, cout: int, kernel: int = 3, dilation: int = 1) -> nn.Sequential:
    padding = dilation * (kernel // 2)
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, padding=padding, dilation=dilation, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class ASPPSum(nn.Module):
    """DeepLabV2's classifier: one dilated 3x3 conv per rate, outputs summed. (B,Cin,h,w) -> (B,C,h,w)."""

    def __init__(self, cin: int, num_classes: int, rates: list[int]):
        super().__init__()
        self.branches = nn.ModuleList(nn.Conv2d(cin, num_classes, 3, padding=r, dilation=r) for r in rates)
        for conv in self.branches:
            nn.init.normal_(conv.weight, 0, 0.01)
            nn.init.zeros_(conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return sum(branch(x) for branch in self.branches)


class ASPP(nn.Module):
    """DeepLabV3's ASPP: 1x1, dilated 3x3 per rate and image pooling, concatenated and projected."""

    def __init__(self, cin: int, cout: int, rates: list[int]):
        super().__init__()
        self.branches = nn.ModuleList([_conv_bn_relu(cin, cout, 1)] + [_conv_bn_relu(cin, cout, 3, r) for r in rates])
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(cin, cout, 1, bias=False), nn.ReLU(inplace=True))
        self.project = _conv_bn_relu(cout * (len(rates) + 2), cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = [branch(x) for branch in self.branches]
        outs.append(self.pool(x).expand(-1, -1, *x.shape[-2:]))
        return self.project(torch.cat(outs, dim=1))


class DeepLab(nn.Module):
    """A DeepLab model; ``head`` is "deeplabv2", "deeplabv3" or "deeplabv3plus".

    forward(x: (B, 3, H, W) normalised image) -> logits (B, num_classes, H, W).
    """

    def __init__(
        self, num_classes: int = 19, head: str = "deeplabv2", backbone: str = "resnet18",
        output_stride: int = 16, aspp_rates: tuple[int, ...] = (6, 12, 18, 24), channels: int = 128,
        weights: str = "none",
    ):
        super().__init__()
        self.encoder = ResNetEncoder(backbone, output_stride, weights)
        feat = self.encoder.channels["layer4"]
        self.head_name = head
        if head == "deeplabv2":
            self.head = ASPPSum(feat, num_classes, list(aspp_rates))
        elif head in ("deeplabv3", "deeplabv3plus"):
            self.aspp = ASPP(feat, channels, list(aspp_rates))
            if head == "deeplabv3plus":
                self.low_level = _conv_bn_relu(self.encoder.channels["layer1"], 48, 1)
                self.decoder = nn.Sequential(_conv_bn_relu(channels + 48, channels), _conv_bn_relu(channels, channels))
            else:
                self.decoder = _conv_bn_relu(channels, channels)
            self.head = nn.Conv2d(channels, num_classes, 1)
        else:
            raise InputError(f"unknown semantic head {head!r}; choose deeplabv2, deeplabv3 or deeplabv3plus")

    def head_parameters(self) -> list[nn.Parameter]:
        """Parameters outside the encoder (trained with a larger learning rate)."""
        encoder = {id(p) for p in self.encoder.parameters()}
        return [p for p in self.parameters() if id(p) not in encoder]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classify(self.encoder(x), x.shape[-2:])

    def classify(self, feats: dict[str, torch.Tensor], size: tuple[int, int]) -> torch.Tensor:
        """Logits (B, num_classes, *size) from the encoder's feature maps (what :meth:`forward` runs
        after the encoder; apart so that co-learning can share the encoder pass)."""
        if self.head_name == "deeplabv2":
            logits = self.head(feats["layer4"])
        else:
            y = self.aspp(feats["layer4"])
            if self.head_name == "deeplabv3plus":
                low = self.low_level(feats["layer1"])
                y = F.interpolate(y, size=low.shape[-2:], mode="bilinear", align_corners=False)
                y = torch.cat([y, low], dim=1)
            logits = self.head(self.decoder(y))
        return F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
