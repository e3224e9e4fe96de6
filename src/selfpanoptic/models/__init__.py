"""Semantic (DeepLab) and instance (embedding U-Net) models, built from config sections."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..classes import NUM_CLASSES
from ..errors import InputError
from .backbones import ResNetEncoder
from .deeplab import DeepLab
from .unet import EmbeddingUNet


def _encoder_weights(init: str) -> str:
    return "imagenet" if init == "imagenet" else "none"


def build_semantic_model(spec: dict[str, Any]) -> DeepLab:
    """A DeepLab from the config's ``semantic.model`` section (init from a checkpoint is not applied here)."""
    return DeepLab(
        num_classes=NUM_CLASSES, head=spec["head"], backbone=spec["backbone"],
        output_stride=spec["output_stride"], aspp_rates=tuple(spec["aspp_rates"]),
        channels=spec["channels"], weights=_encoder_weights(spec["init"]),
    )


def build_instance_model(spec: dict[str, Any]) -> EmbeddingUNet:
    """An embedding U-Net from the config's ``instance.model`` section."""
    return EmbeddingUNet(
        embedding_dim=spec["embedding_dim"], backbone=spec["backbone"],
        decoder_channels=spec["decoder_channels"], weights=_encoder_weights(spec["init"]),
    )


def load_model_file(path: str | Path) -> dict[str, Any]:
    """Read a model file written by training: {"kind", "spec", "state_dict", ...}; weights only, no pickled code."""
    path = Path(path)
    if not path.is_file():
        raise InputError("model file does not exist", path, "run the training stage that writes it first")
    return torch.load(path, map_location="cpu", weights_only=True)


def model_from_file(path: str | Path) -> nn.Module:
    """Rebuild a trained model (semantic or instance) from its model file, in eval mode."""
    saved = load_model_file(path)
    build = {"semantic": build_semantic_model, "instance": build_instance_model}[saved["kind"]]
    spec = dict(saved["spec"], init="none")
    model = build(spec)
    model.load_state_dict(saved["state_dict"])
    return model.eval()


def init_from_checkpoint(model: nn.Module, init: str) -> None:
    """Apply ``init`` when it is a path to a model file or checkpoint: load its weights into ``model``."""
    if init in ("none", "imagenet"):
        return
    saved = load_model_file(init)
    state = saved.get("state_dict", saved.get("model"))
    if state is None:
        raise InputError("file holds no model weights", init, "give a model file written by selfpanoptic training")
    model.load_state_dict(state)


__all__ = [
    "DeepLab", "EmbeddingUNet", "ResNetEncoder", "build_instance_model", "build_semantic_model",
    "init_from_checkpoint", "load_model_file", "model_from_file",
]
