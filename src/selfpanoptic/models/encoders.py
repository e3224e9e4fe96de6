"""The one place that turns a backbone name into an encoder.

Every encoder maps forward(x: float (B, 3, H, W), ImageNet-normalised) to a dict of float maps
``layer1`` (stride 4), ``layer2`` (8), ``layer3`` (16), ``layer4`` (32; a ResNet's
``output_stride``), each (B, ``channels[k]``, ceil(H / s), ceil(W / s)) for any H, W, odd sizes
included; ``layer1`` is the finest, ``layer4`` the coarsest. ResNets also give ``stem`` (stride 4).
Attributes: ``channels`` (level -> channel count) and ``output_stride``.

timm (+0.7 s import) is imported only when a transformer is built, so ResNet runs do not pay it.
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from ..errors import InputError
from .backbones import RESNETS, ResNetEncoder

MITS = tuple(f"mit_b{n}" for n in range(6))
DINOV2S = ("dinov2_vits14", "dinov2_vitb14")
TRANSFORMERS = MITS + DINOV2S
"""Transformer backbones: output stride 32 only, drop path allowed."""
ENCODERS = tuple(RESNETS) + TRANSFORMERS
"""Every backbone name :func:`build_encoder` accepts."""


def _build_resnet(name: str, output_stride: int, weights: str | Path, drop_path: float) -> nn.Module:
    """A ResNetEncoder; ``weights`` may also be a torchvision-layout state-dict file."""
    if drop_path != 0:
        raise InputError(f"drop_path is for transformer backbones; {name} has none (got {drop_path})", None,
                         f"set drop_path to 0 for {name}, or choose one of {', '.join(TRANSFORMERS)}")
    if str(weights) in ("none", "imagenet"):
        return ResNetEncoder(name, output_stride, str(weights))
    from .pretrained import load_resnet_file, resolve_weights

    encoder = ResNetEncoder(name, output_stride, "none")
    load_resnet_file(encoder, resolve_weights(name, weights), name)
    return encoder


def build_encoder(name: str, output_stride: int = 32, weights: str | Path = "none",
                  drop_path: float = 0.0) -> nn.Module:
    """Build the encoder of backbone ``name``.

    Parameters
    ----------
    name:
        One of :data:`ENCODERS`: ``resnet18|34|50|101``, ``mit_b0`` ... ``mit_b5``,
        ``dinov2_vits14``, ``dinov2_vitb14``.
    output_stride:
        ResNets: 8, 16 or 32 (dilated last stages). Transformers: 32 only (the caller passes 32
        for them; anything else is an InputError naming ``semantic.model.output_stride``).
    weights:
        ``"none"`` (random), ``"imagenet"`` (the released file in the torch hub cache; never
        downloaded) or the path of a weight file in the backbone's release or timm layout
        (torchvision layout for ResNets).
    drop_path:
        Stochastic-depth rate for transformers (0 = off); must be 0 for ResNets.

    Returns
    -------
    nn.Module
        forward(x: float (B, 3, H, W)) -> {"layer1": (B, C1, ceil(H/4), ceil(W/4)), ...,
        "layer4": (B, C4, ceil(H/32), ceil(W/32))} (ResNets: layer3/layer4 at their output stride),
        with ``channels`` and ``output_stride`` attributes.

    Raises
    ------
    InputError
        Unknown name, stride or drop path not allowed, weight file missing or not fitting.
    """
    if name in RESNETS:
        return _build_resnet(name, output_stride, weights, drop_path)
    if name in MITS:
        from .transformers import MiTEncoder

        return MiTEncoder(name, output_stride, weights, drop_path)
    if name in DINOV2S:
        from .transformers import DINOv2Encoder

        return DINOv2Encoder(name, output_stride, weights, drop_path)
    raise InputError(f"unknown backbone {name!r}; choose one of {', '.join(ENCODERS)}")
