"""Semantic (DeepLab) and instance (embedding U-Net) models, built from config sections."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..classes import NUM_CLASSES
from ..errors import InputError
from .backbones import ResNetEncoder
from .deeplab import DeepLab
from .spade import SPADEGenerator
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


LABEL_CHANNELS = NUM_CLASSES + 1
"""The translator's input: one channel per class plus the void channel (ignore, unlabelled)."""


def build_translator(spec: dict[str, Any]) -> SPADEGenerator:
    """A SPADE generator from the config's ``translation.generator`` section (label map -> image)."""
    return SPADEGenerator(label_channels=LABEL_CHANNELS, channels=spec["channels"], upsamplings=spec["upsamplings"],
                          style_dim=spec["style_dim"], spectral=spec["spectral_norm"])


MODEL_KINDS = ("semantic", "instance", "translator")
_MODEL_FIX = "give a model file written by selfpanoptic's training (pretrain-* or selftrain-*)"


def load_model_file(path: str | Path, kind: str | None = None) -> dict[str, Any]:
    """Read a model file written by training: ``{"kind", "spec", "state_dict", ...}``.

    The one loader of model files. Weights only: a file holding pickled Python objects is
    refused (nothing in it runs). ``kind``: ``"semantic"`` or ``"instance"`` when the caller needs
    one. Any unreadable, foreign or wrong-kind file raises :class:`InputError` naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("model file does not exist", path, "run the training stage that writes it first")
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # torch's own text suggests weights_only=False, which would run the file's code: never say so
        if "Unsupported global" in str(exc):
            raise InputError("file holds pickled Python objects besides tensors; they are not loaded, for safety",
                             path, _MODEL_FIX) from None
        raise InputError("not a readable torch model file (not a torch save file, or truncated)", path,
                         _MODEL_FIX) from None
    except Exception as exc:  # torch raises RuntimeError, EOFError, IndexError, ... for foreign files
        raise InputError(f"not a readable torch model file ({type(exc).__name__}: {str(exc).splitlines()[0][:120]})",
                         path, _MODEL_FIX) from None
    if not isinstance(saved, dict) or not {"kind", "spec", "state_dict"} <= set(saved):
        found = sorted(saved)[:6] if isinstance(saved, dict) else type(saved).__name__
        raise InputError(f"not a selfpanoptic model file (holds {found})", path, _MODEL_FIX)
    if saved["kind"] not in MODEL_KINDS:
        raise InputError(f"unknown model kind {saved['kind']!r}", path, _MODEL_FIX)
    if kind is not None and saved["kind"] != kind:
        article = {"semantic": "a", "instance": "an", "translator": "a"}
        raise InputError(f"is {article[saved['kind']]} {saved['kind']} model, but this command needs "
                         f"{article[kind]} {kind} model", path,
                         f"give the {kind} model file " + (
                             "(results/translation/translator.pt)" if kind == "translator"
                             else f"(results/<run>/{kind}/...model.pt)"))
    return saved


def _load_weights(model: nn.Module, state: dict[str, Any], path: str | Path, what: str, fix: str) -> None:
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:  # missing/unexpected keys, shape mismatches (classes, channels)
        first = str(exc).splitlines()[1:2] or [str(exc)]
        raise InputError(f"its weights do not fit {what} ({first[0].strip()[:160]})", path, fix) from None


def model_from_file(path: str | Path, kind: str | None = None) -> nn.Module:
    """Rebuild a trained model (semantic, instance or translator, checked against ``kind``) from its file, in eval mode."""
    saved = load_model_file(path, kind)
    build = {"semantic": build_semantic_model, "instance": build_instance_model,
             "translator": build_translator}[saved["kind"]]
    try:
        model = build(dict(saved["spec"], init="none"))
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"its model spec cannot be built ({exc})", path, _MODEL_FIX) from None
    _load_weights(model, saved["state_dict"], path, "the model it describes", _MODEL_FIX)
    return model.eval()


def init_from_checkpoint(model: nn.Module, init: str, kind: str) -> None:
    """Apply ``init`` when it is a path to a model file: load its weights (of a ``kind`` model) into ``model``."""
    if init in ("none", "imagenet"):
        return
    saved = load_model_file(init, kind)
    _load_weights(model, saved["state_dict"], init, f"the model that `{kind}.model` describes",
                  f"`{kind}.model.init` needs a model file of the same architecture as `{kind}.model` "
                  f"(backbone, head, widths): match them, or use init: none / imagenet")


__all__ = [
    "LABEL_CHANNELS", "MODEL_KINDS", "DeepLab", "EmbeddingUNet", "ResNetEncoder", "SPADEGenerator",
    "build_instance_model", "build_semantic_model", "build_translator",
    "init_from_checkpoint", "load_model_file", "model_from_file",
]
