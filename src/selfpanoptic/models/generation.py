"""The generation head of generative co-learning and the patch discriminator of its GAN loss.

The head decodes the DeepLab encoder's feature maps into an image (colour or inverse depth) at
the input's size. It is trained jointly with segmentation, so its gradients shape the shared
encoder, and it is dropped at inference: the semantic model file never holds it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .deeplab import _conv_bn_relu

# (feature map, its stride) climbed by the decoder; layer4 is where it starts.
_SKIPS = ("layer2", "layer1")


class GenerationHead(nn.Module):
    """A decoder from encoder features to an ``out_channels`` image in ``[0, 1]``.

    forward(feats: the encoder's dict (see :class:`~selfpanoptic.models.backbones.ResNetEncoder`),
    size: (H, W)) -> (B, out_channels, H, W) float, sigmoid output.

    With ``skips`` it is U-Net-like: each upsampling step concatenates the encoder's map of that
    stride (layer2 at stride 8, layer1 at stride 4). Without, it decodes from layer4 alone, as the
    reference's GAN variant does. Upsampling is bilinear followed by a 3x3 convolution (no
    transposed convolutions: the reference saw their checkerboard artefacts).
    """

    def __init__(self, encoder_channels: dict[str, int], out_channels: int = 3, channels: int = 64,
                 skips: bool = True):
        super().__init__()
        self.skips = skips
        width = encoder_channels["layer4"]
        self.steps = nn.ModuleList()
        for name in _SKIPS:
            extra = encoder_channels[name] if skips else 0
            self.steps.append(_conv_bn_relu(width + extra, channels))
            width = channels
        # stride 4 -> 2 -> 1
        self.refine = nn.ModuleList([_conv_bn_relu(channels, channels), _conv_bn_relu(channels, channels // 2)])
        self.out = nn.Conv2d(channels // 2, out_channels, 3, padding=1)

    def forward(self, feats: dict[str, torch.Tensor], size: tuple[int, int]) -> torch.Tensor:
        y = feats["layer4"]
        for name, conv in zip(_SKIPS, self.steps):
            skip = feats[name]
            y = F.interpolate(y, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            if self.skips:
                y = torch.cat([y, skip], dim=1)
            y = conv(y)
        height, width = size
        for i, conv in enumerate(self.refine):
            # the last refinement works at the full size, the one before at half of it
            target = (height, width) if i == len(self.refine) - 1 else ((height + 1) // 2, (width + 1) // 2)
            y = conv(F.interpolate(y, size=target, mode="bilinear", align_corners=False))
        return torch.sigmoid(self.out(y))


class PatchDiscriminator(nn.Module):
    """A conditional patch discriminator (pix2pix): one real/fake logit per overlapping patch.

    forward(condition (B, Cc, H, W), image (B, Ci, H, W)) -> logits (B, 1, H/4 - 2, W/4 - 2) for
    4x4 kernels: two stride-2 convolutions then two stride-1 ones, instance norm and LeakyReLU(0.2)
    after every convolution but the first (no norm) and the last (the logit).
    """

    def __init__(self, in_channels: int, channels: int = 64):
        super().__init__()

        def block(cin: int, cout: int, stride: int, norm: bool) -> list[nn.Module]:
            layers: list[nn.Module] = [nn.Conv2d(cin, cout, 4, stride=stride, padding=1)]
            if norm:
                layers.append(nn.InstanceNorm2d(cout, affine=True))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            return layers

        self.net = nn.Sequential(
            *block(in_channels, channels, 2, False),
            *block(channels, 2 * channels, 2, True),
            *block(2 * channels, 4 * channels, 1, True),
            nn.Conv2d(4 * channels, 1, 4, stride=1, padding=1),
        )

    def forward(self, condition: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([condition, image], dim=1))
