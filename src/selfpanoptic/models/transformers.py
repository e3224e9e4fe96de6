"""Transformer encoders on timm: MiT (SegFormer's Mix Transformer, B0-B5) and DINOv2 ViT-S/14, ViT-B/14.

Both give the same four-level dict as the ResNet encoders, so the DeepLab heads, the U-Net
decoder and the generation head take them unchanged: for an input (B, 3, H, W), ``layer1`` ..
``layer4`` are float maps (B, C_k, ceil(H / s), ceil(W / s)) with s = 4, 8, 16, 32 (ResNets at
output stride 32 give the same sizes), C_k = ``channels[layer_k]``, dtype that of the input.
Only output stride 32 exists for them (a transformer is not dilated); the caller passes 32.

- MiT: timm has no MiT (licence, timm #1258), but its ``PyramidVisionTransformerV2`` is the same
  network: overlapping patch embeddings, spatial-reduction attention with separate ``q`` and
  fused ``kv``, Mix-FFN with a depthwise 3x3 convolution. MiT differs from PVTv2 only in its
  hyper-parameters, set here explicitly (MLP ratio 4 in every stage, where PVTv2 B0-B4 use
  8/8/4/4). The four stage outputs are strides 4/8/16/32 already. Sides under 32 pixels are
  zero-padded to 32 first (stage 1 reduces keys and values by an 8x8 convolution) and cropped back.
- DINOv2: a plain ViT with 14-pixel patches, one scale. timm pads the input at the bottom and
  right to a multiple of 14 (``dynamic_img_pad``; zeros, i.e. the mean colour of a normalised
  image) and resamples the position embedding to the token grid (``dynamic_img_size``), so any
  H, W work without resizing the image. The token maps after blocks 3, 6, 9, 12 (of 12; passed
  through the final LayerNorm, as DINOv2's own dense heads do) become a pyramid in ViTDet's
  simple way: two 2x2 transposed convolutions (x4), one (x2), identity, 2x2 max-pool, giving
  strides 3.5, 7, 14, 28; then a bilinear resampling by 14/16 with exact pixel geometry, cropped
  to ceil(H / s). The pyramid (``encoder.pyramid``) is new and randomly initialised even with
  pretrained weights. Channels stay the embedding width (384 or 768) at every level.
"""

from __future__ import annotations

import math
from pathlib import Path

import timm
import torch
import torch.nn.functional as F
from timm.layers import LayerNorm2d
from timm.models import pvt_v2, vision_transformer
from torch import nn

from ..errors import InputError
from .pretrained import load_timm_weights, resolve_weights

LEVELS = ("layer1", "layer2", "layer3", "layer4")
STRIDES = (4, 8, 16, 32)

_MIT_WIDE = (64, 128, 320, 512)
MIT_CONFIGS: dict[str, dict] = {
    "mit_b0": {"embed_dims": (32, 64, 160, 256), "depths": (2, 2, 2, 2)},
    "mit_b1": {"embed_dims": _MIT_WIDE, "depths": (2, 2, 2, 2)},
    "mit_b2": {"embed_dims": _MIT_WIDE, "depths": (3, 4, 6, 3)},
    "mit_b3": {"embed_dims": _MIT_WIDE, "depths": (3, 4, 18, 3)},
    "mit_b4": {"embed_dims": _MIT_WIDE, "depths": (3, 8, 27, 3)},
    "mit_b5": {"embed_dims": _MIT_WIDE, "depths": (3, 6, 40, 3)},
}
"""MiT widths and depths per stage (SegFormer's ``mit_b0`` ... ``mit_b5``)."""

MIT_SHARED = {"num_heads": (1, 2, 5, 8), "mlp_ratios": (4, 4, 4, 4), "sr_ratios": (8, 4, 2, 1), "qkv_bias": True}
"""Hyper-parameters every MiT shares: heads, MLP ratio (4, not PVTv2's 8/8/4/4), attention reduction."""

MIT_MIN_SIZE = 32
"""Smallest MiT input side run as is; smaller inputs are padded to it (outputs cropped back)."""

DINOV2_CONFIGS: dict[str, str] = {
    "dinov2_vits14": "vit_small_patch14_dinov2",
    "dinov2_vitb14": "vit_base_patch14_dinov2",
}
"""DINOv2 backbone name -> timm model name (built with ``pretrained=False``: timm never downloads)."""


def feature_sizes(height: int, width: int) -> dict[str, tuple[int, int]]:
    """The (h, w) of each level for an input of ``height`` x ``width``: ceil(H / s), ceil(W / s)."""
    return {level: (math.ceil(height / s), math.ceil(width / s)) for level, s in zip(LEVELS, STRIDES)}


def checked_weights(name: str, known: dict, family: str, output_stride: int, weights: str | Path,
                    drop_path: float) -> Path | None:
    """What both transformer encoders check before building: a known ``name``, output stride 32, a
    drop-path rate in [0, 1); returns the weight file ``weights`` names (None for ``none``), found
    first so that a missing file fails before any network is built. Raises InputError otherwise."""
    if name not in known:
        raise InputError(f"unknown {family} backbone {name!r}; choose one of {', '.join(known)}")
    if output_stride != 32:
        raise InputError(f"the {name} encoder has output stride 32 only, not {output_stride}", None,
                         "set `semantic.model.output_stride: 32` for transformer backbones (they are not dilated)")
    if not 0.0 <= drop_path < 1.0:
        raise InputError(f"drop_path must be in [0, 1), not {drop_path}", None,
                         "use 0 (off) or a small rate such as 0.1")
    return resolve_weights(name, weights)


class MiTEncoder(nn.Module):
    """SegFormer's Mix Transformer (MiT-B0 ... B5) as a four-level encoder, on timm's PVTv2.

    Parameters
    ----------
    name:
        ``"mit_b0"`` ... ``"mit_b5"``.
    output_stride:
        Must be 32 (InputError otherwise).
    weights:
        ``"none"`` (random), ``"imagenet"`` (``mit_b{N}.pth`` from the torch hub cache, see
        :mod:`~selfpanoptic.models.pretrained`) or a path to a weight file; never downloads.
    drop_path:
        Stochastic-depth rate of the last block, rising linearly from 0 (SegFormer: 0.1).

    forward(x: float (B, 3, H, W), ImageNet-normalised) -> dict ``layer1``..``layer4`` of float
    (B, ``channels[k]``, ceil(H/s), ceil(W/s)) with s = 4, 8, 16, 32.
    """

    def __init__(self, name: str = "mit_b0", output_stride: int = 32, weights: str | Path = "none",
                 drop_path: float = 0.0):
        super().__init__()
        path = checked_weights(name, MIT_CONFIGS, "MiT", output_stride, weights, drop_path)
        config = MIT_CONFIGS[name]
        self.model = pvt_v2.PyramidVisionTransformerV2(num_classes=0, drop_path_rate=drop_path, **config, **MIT_SHARED)
        if path is not None:
            load_timm_weights(self.model, path, name, pvt_v2.checkpoint_filter_fn)
        self.name = name
        self.channels = dict(zip(LEVELS, config["embed_dims"]))
        self.output_stride = 32

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute the blocks in the backward pass (less memory, about a third more time)."""
        self.model.set_grad_checkpointing(enable)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        height, width = x.shape[-2:]
        # stage 1's 8x8 attention reduction needs a stride-4 map of at least 8 cells (29+ pixels):
        # smaller images are zero-padded at the bottom / right and the maps cropped back
        x = F.pad(x, (0, max(0, MIT_MIN_SIZE - width), 0, max(0, MIT_MIN_SIZE - height)))
        maps = self.model.forward_intermediates(x, intermediates_only=True)
        sizes = feature_sizes(height, width)
        return {level: feat[..., : sizes[level][0], : sizes[level][1]] for level, feat in zip(LEVELS, maps)}


def _resample(x: torch.Tensor, scale: float, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resampling of a map by ``scale`` with pixel-centre geometry, to exactly ``size``.

    ``F.interpolate`` with a given scale factor (not recomputed) maps output cell i onto input
    coordinate (i + 0.5) / scale - 0.5, which keeps cell centres on the image's pixels; its output
    size is floor(n * scale) though. Replicating the last two cells first (what bilinear does at a
    border anyway) makes that at least ``size``, then the surplus is cropped.
    """
    x = F.pad(x, (0, 2, 0, 2), mode="replicate")
    x = F.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=False, recompute_scale_factor=False)
    return x[..., : size[0], : size[1]]


class SimplePyramid(nn.Module):
    """ViTDet's simple feature pyramid: four stride-``patch`` token maps -> strides 4, 8, 16, 32.

    forward(maps: four float (B, dim, h, w) maps at stride ``patch``, image size (H, W)) -> dict
    ``layer1``..``layer4`` of float (B, dim, ceil(H/s), ceil(W/s)).
    """

    def __init__(self, dim: int, patch: int = 14):
        super().__init__()
        self.patch = patch
        # finest level: two 2x2 transposed convolutions with a norm and GELU between (ViTDet's x4 branch)
        self.up4 = nn.Sequential(nn.ConvTranspose2d(dim, dim, 2, stride=2), LayerNorm2d(dim), nn.GELU(),
                                 nn.ConvTranspose2d(dim, dim, 2, stride=2))
        self.up2 = nn.ConvTranspose2d(dim, dim, 2, stride=2)
        # ceil_mode keeps a one-token-wide map alive (inputs under 28 pixels)
        self.down2 = nn.MaxPool2d(2, ceil_mode=True)

    def forward(self, maps: list[torch.Tensor], image_size: tuple[int, int]) -> dict[str, torch.Tensor]:
        made = (self.up4(maps[0]), self.up2(maps[1]), maps[2], self.down2(maps[3]))
        sizes = feature_sizes(*image_size)
        out = {}
        for level, stride, factor, feat in zip(LEVELS, STRIDES, (0.25, 0.5, 1.0, 2.0), made):
            out[level] = _resample(feat, self.patch * factor / stride, sizes[level])
        return out


class DINOv2Encoder(nn.Module):
    """A DINOv2 ViT (S/14 or B/14, timm) with a simple feature pyramid as a four-level encoder.

    Parameters
    ----------
    name:
        ``"dinov2_vits14"`` (embedding 384) or ``"dinov2_vitb14"`` (768).
    output_stride:
        Must be 32 (InputError otherwise).
    weights:
        ``"none"``, ``"imagenet"`` (Meta's ``dinov2_vit{s,b}14_pretrain.pth`` from the torch hub
        cache; LVD-142M self-supervised, the name is shared with the other encoders) or a path;
        never downloads. Only the ViT is loaded; ``pyramid`` stays random.
    drop_path:
        Stochastic-depth rate of the last block, rising linearly from 0.

    forward(x: float (B, 3, H, W), ImageNet-normalised, any H, W) -> dict ``layer1``..``layer4``
    of float (B, embed_dim, ceil(H/s), ceil(W/s)) with s = 4, 8, 16, 32.
    """

    def __init__(self, name: str = "dinov2_vits14", output_stride: int = 32, weights: str | Path = "none",
                 drop_path: float = 0.0):
        super().__init__()
        path = checked_weights(name, DINOV2_CONFIGS, "DINOv2", output_stride, weights, drop_path)
        # pretrained=False: timm builds the network only; the weights come from the local file
        self.model = timm.create_model(DINOV2_CONFIGS[name], pretrained=False, num_classes=0, dynamic_img_size=True,
                                       dynamic_img_pad=True, drop_path_rate=drop_path)
        if path is not None:
            load_timm_weights(self.model, path, name, vision_transformer.checkpoint_filter_fn)
        depth, dim = len(self.model.blocks), self.model.embed_dim
        self.taps = tuple(depth * (i + 1) // 4 - 1 for i in range(4))  # 0-based: blocks 3, 6, 9, 12 of 12
        self.pyramid = SimplePyramid(dim, patch=self.model.patch_embed.patch_size[0])
        self.name = name
        self.channels = dict.fromkeys(LEVELS, dim)
        self.output_stride = 32

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute the ViT blocks in the backward pass (less memory, about a third more time)."""
        self.model.set_grad_checkpointing(enable)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        maps = self.model.forward_intermediates(x, indices=list(self.taps), norm=True, output_fmt="NCHW",
                                                intermediates_only=True)
        return self.pyramid(maps, tuple(x.shape[-2:]))
