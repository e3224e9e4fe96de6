"""ResNet encoders from torchvision, dilated to output stride 8 or 16, with their initialisation.

torchvision's ResNet-18/34 blocks refuse dilation, so dilation is applied here by editing the
convolutions of the last stages directly: the stride-2 convolution of a dilated stage becomes
stride 1 and every 3x3 convolution from there on gets dilation (and padding) 2 or 4. This is
the same network DeepLab uses for ResNet-50/101.
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision import models as tv_models

from ..errors import InputError

RESNETS = {
    "resnet18": (tv_models.resnet18, tv_models.ResNet18_Weights.IMAGENET1K_V1),
    "resnet34": (tv_models.resnet34, tv_models.ResNet34_Weights.IMAGENET1K_V1),
    "resnet50": (tv_models.resnet50, tv_models.ResNet50_Weights.IMAGENET1K_V2),
    "resnet101": (tv_models.resnet101, tv_models.ResNet101_Weights.IMAGENET1K_V2),
}


def _dilate_stage(stage: nn.Sequential, dilation: int) -> None:
    """Turn a stride-2 ResNet stage into a stride-1 stage whose 3x3 convolutions are dilated."""
    for module in stage.modules():
        if isinstance(module, nn.Conv2d):
            if module.stride == (2, 2):
                module.stride = (1, 1)
            if module.kernel_size == (3, 3):
                module.dilation = (dilation, dilation)
                module.padding = (dilation, dilation)


class ResNetEncoder(nn.Module):
    """ResNet trunk returning the feature maps of every stage.

    forward(x: (B, 3, H, W)) -> dict with "stem" (stride 4, after max-pool), "layer1" (stride 4),
    "layer2" (stride 8), "layer3" (stride 8 or 16), "layer4" (stride ``output_stride``).
    ``channels`` gives the channel count of each.
    """

    def __init__(self, name: str = "resnet18", output_stride: int = 16, weights: str = "none"):
        super().__init__()
        if name not in RESNETS:
            raise InputError(f"unknown backbone {name!r}; choose one of {', '.join(RESNETS)}")
        if output_stride not in (8, 16, 32):
            raise InputError(f"output_stride must be 8, 16 or 32, not {output_stride}")
        builder, _ = RESNETS[name]
        net = builder(weights=None)
        if weights == "imagenet":
            net.load_state_dict(load_imagenet_state(name))
        if output_stride <= 16:
            _dilate_stage(net.layer4, 2 if output_stride == 16 else 4)
        if output_stride == 8:
            _dilate_stage(net.layer3, 2)
        self.stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
        self.layer1, self.layer2, self.layer3, self.layer4 = net.layer1, net.layer2, net.layer3, net.layer4
        expansion = 4 if name in ("resnet50", "resnet101") else 1
        self.channels = {
            "stem": 64, "layer1": 64 * expansion, "layer2": 128 * expansion,
            "layer3": 256 * expansion, "layer4": 512 * expansion,
        }
        self.output_stride = output_stride

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        feats = {"stem": self.stem(x)}
        feats["layer1"] = self.layer1(feats["stem"])
        feats["layer2"] = self.layer2(feats["layer1"])
        feats["layer3"] = self.layer3(feats["layer2"])
        feats["layer4"] = self.layer4(feats["layer3"])
        return feats


def load_imagenet_state(name: str) -> dict:
    """torchvision's ImageNet weights of ``name`` from the local torch hub cache; never downloads.

    No network is assumed: a file not in the cache raises the error of
    :func:`~selfpanoptic.models.pretrained.find_imagenet_file`, saying where to get it and where to put it.
    """
    from .pretrained import find_imagenet_file

    return torch.load(find_imagenet_file(name), map_location="cpu", weights_only=True)
