"""The instance model: a U-Net decoder with skip connections on an encoder (a ResNet or a
transformer), giving a D-dimensional embedding per pixel (SPOCO)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .encoders import build_encoder
from .heads import _conv_bn_relu


class UpBlock(nn.Module):
    """Upsample to the skip's size, concatenate the skip, two 3x3 conv-BN-ReLU.

    forward(x: (B, cin, h, w), skip: (B, cskip, h', w')) -> (B, cout, h', w').
    """

    def __init__(self, cin: int, cskip: int, cout: int):
        super().__init__()
        self.convs = nn.Sequential(_conv_bn_relu(cin + cskip, cout), _conv_bn_relu(cout, cout))

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return self.convs(torch.cat([x, skip], dim=1))


class EmbeddingUNet(nn.Module):
    """forward(x: (B, 3, H, W)) -> embeddings (B, embedding_dim, H, W).

    The encoder runs at output stride 32 (no dilation); the decoder climbs back through the
    stride-16, 8 and 4 features with skip connections, and a last upsampling restores H x W.
    It reads only the encoder's four-level dict (layer1..layer4 and their ``channels``), so any
    backbone of :func:`~selfpanoptic.models.encoders.build_encoder` fits.

    Parameters
    ----------
    embedding_dim:
        Channels of the output embedding.
    backbone:
        Any name of :data:`~selfpanoptic.models.encoders.ENCODERS`.
    decoder_channels:
        Width ``c`` of the decoder (2c after layer3, c after layer2 and layer1).
    weights:
        The encoder's initial weights: ``"none"``, ``"imagenet"`` or an encoder weight file.
    drop_path:
        Stochastic-depth rate of a transformer encoder (0 for a ResNet).
    """

    def __init__(self, embedding_dim: int = 8, backbone: str = "resnet18", decoder_channels: int = 64,
                 weights: str = "none", drop_path: float = 0.0):
        super().__init__()
        self.encoder = build_encoder(backbone, 32, weights, drop_path)
        ch = self.encoder.channels
        c = decoder_channels
        self.up3 = UpBlock(ch["layer4"], ch["layer3"], 2 * c)
        self.up2 = UpBlock(2 * c, ch["layer2"], c)
        self.up1 = UpBlock(c, ch["layer1"], c)
        self.out = nn.Conv2d(c, embedding_dim, 1)

    def head_parameters(self) -> list[nn.Parameter]:
        """Parameters outside the encoder (trained with a larger learning rate)."""
        encoder = {id(p) for p in self.encoder.parameters()}
        return [p for p in self.parameters() if id(p) not in encoder]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.encoder(x)
        y = self.up3(feats["layer4"], feats["layer3"])
        y = self.up2(y, feats["layer2"])
        y = self.up1(y, feats["layer1"])
        return F.interpolate(self.out(y), size=x.shape[-2:], mode="bilinear", align_corners=False)
