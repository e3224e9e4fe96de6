"""The semantic segmentation model: an encoder and a head.

:class:`DeepLab` keeps its name from its first heads but hosts any of them:

- ``deeplabv2``: ASPP as parallel 3x3 convolutions with rates (6, 12, 18, 24) straight to class
  scores, summed (on layer4).
- ``deeplabv3``: ASPP with a 1x1 branch, 3x3 branches at the rates and image pooling,
  concatenated, projected, then a 3x3 convolution and the classifier (on layer4).
- ``deeplabv3plus``: the V3 ASPP plus a decoder that fuses stride-4 low-level features (layer1)
  before classifying.
- ``daformer``: DAFormer's multi-level decoder (:class:`~selfpanoptic.models.heads.DAFormerHead`).
- ``segformer``: SegFormer's all-MLP decoder (:class:`~selfpanoptic.models.heads.SegFormerHead`).

The encoder is any of :func:`~selfpanoptic.models.encoders.build_encoder`'s (ResNets, MiT,
DINOv2). All return logits (B, C, H, W) at the input resolution (bilinear upsampling).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InputError
from .encoders import TRANSFORMERS, build_encoder
from .heads import ASPP, ASPPSum, DAFormerHead, SegFormerHead, _conv_bn_relu

HEADS = ("deeplabv2", "deeplabv3", "deeplabv3plus", "daformer", "segformer")
"""Names of the semantic heads (``semantic.model.head``)."""

_MULTI_LEVEL = {"daformer": DAFormerHead, "segformer": SegFormerHead}


class DeepLab(nn.Module):
    """A semantic segmentation model: ``encoder`` (any backbone) and one of :data:`HEADS`.

    forward(x: (B, 3, H, W) normalised image) -> logits (B, num_classes, H, W).

    Parameters
    ----------
    num_classes:
        Output channels.
    head:
        One of :data:`HEADS`.
    backbone:
        Any name of :data:`~selfpanoptic.models.encoders.ENCODERS`.
    output_stride:
        8 or 16 dilate a ResNet; transformer backbones always run at 32 and ignore it.
    aspp_rates:
        Dilations of the DeepLab heads' ASPP (the DAFormer head has its own, fixed).
    channels:
        Width of the V3/V3+ ASPP and decoder.
    weights:
        The encoder's initial weights: ``"none"``, ``"imagenet"`` or an encoder weight file.
    drop_path:
        Stochastic-depth rate of a transformer encoder (0 for a ResNet).
    embed_channels:
        Width of the DAFormer and SegFormer heads' embeddings and fusion.
    """

    def __init__(
        self, num_classes: int = 19, head: str = "deeplabv2", backbone: str = "resnet18",
        output_stride: int = 16, aspp_rates: tuple[int, ...] = (6, 12, 18, 24), channels: int = 128,
        weights: str = "none", drop_path: float = 0.0, embed_channels: int = 256,
    ):
        super().__init__()
        if head not in HEADS:
            raise InputError(f"unknown semantic head {head!r}; choose one of {', '.join(HEADS)}")
        # transformers have a fixed stride-32 pyramid: the config's output_stride is for ResNets
        stride = 32 if backbone in TRANSFORMERS else output_stride
        self.encoder = build_encoder(backbone, stride, weights, drop_path)
        self.head_name = head
        if head in _MULTI_LEVEL:
            self.head = _MULTI_LEVEL[head](self.encoder.channels, num_classes, embed_channels)
        else:
            self._build_deeplab_head(num_classes, list(aspp_rates), channels)

    def _build_deeplab_head(self, num_classes: int, rates: list[int], channels: int) -> None:
        """The V2/V3/V3+ modules, under the attribute names older model files hold."""
        feat = self.encoder.channels["layer4"]
        if self.head_name == "deeplabv2":
            self.head = ASPPSum(feat, num_classes, rates)
            return
        self.aspp = ASPP(feat, channels, rates)
        if self.head_name == "deeplabv3plus":
            self.low_level = _conv_bn_relu(self.encoder.channels["layer1"], 48, 1)
            self.decoder = nn.Sequential(_conv_bn_relu(channels + 48, channels), _conv_bn_relu(channels, channels))
        else:
            self.decoder = _conv_bn_relu(channels, channels)
        self.head = nn.Conv2d(channels, num_classes, 1)

    def head_parameters(self) -> list[nn.Parameter]:
        """Parameters outside the encoder (trained with a larger learning rate)."""
        encoder = {id(p) for p in self.encoder.parameters()}
        return [p for p in self.parameters() if id(p) not in encoder]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classify(self.encoder(x), x.shape[-2:])

    def classify(self, feats: dict[str, torch.Tensor], size: tuple[int, int]) -> torch.Tensor:
        """Logits (B, num_classes, *size) from the encoder's feature maps (what :meth:`forward` runs
        after the encoder; apart so that co-learning can share the encoder pass)."""
        if self.head_name in _MULTI_LEVEL:
            logits = self.head(feats)
        elif self.head_name == "deeplabv2":
            logits = self.head(feats["layer4"])
        else:
            y = self.aspp(feats["layer4"])
            if self.head_name == "deeplabv3plus":
                low = self.low_level(feats["layer1"])
                y = F.interpolate(y, size=low.shape[-2:], mode="bilinear", align_corners=False)
                y = torch.cat([y, low], dim=1)
            logits = self.head(self.decoder(y))
        return F.interpolate(logits, size=size, mode="bilinear", align_corners=False)


__all__ = ["ASPP", "ASPPSum", "HEADS", "DeepLab", "_conv_bn_relu"]
