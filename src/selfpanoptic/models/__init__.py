"""Semantic (DeepLab) and instance (embedding U-Net) models, built from config sections."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from torch import nn

from ..classes import NUM_CLASSES
from ..errors import InputError
from .backbones import ResNetEncoder
from .deeplab import HEADS, DeepLab
from .encoders import ENCODERS, TRANSFORMERS, build_encoder
from .pretrained import read_torch_file
from .spade import SPADEGenerator
from .style_encoder import StyleEncoder
from .stylegan import SemanticGenerator
from .unet import EmbeddingUNet


def _check_drop_path(spec: dict[str, Any], section: str) -> None:
    """A ResNet has no stochastic depth: refuse ``drop_path`` > 0 naming the config key."""
    rate = spec.get("drop_path", 0.0)
    if rate > 0 and spec["backbone"] not in TRANSFORMERS:
        raise InputError(f"invalid config: {section}.model.drop_path is {rate}, but backbone {spec['backbone']} "
                         "has no stochastic depth", None,
                         f"set {section}.model.drop_path to 0, or choose a transformer backbone "
                         f"({', '.join(TRANSFORMERS)})")


def _encoder_weights(spec: dict[str, Any], section: str) -> str:
    """``weights`` for :func:`build_encoder` from ``init``: an encoder weight file goes to the
    encoder; a selfpanoptic model file is applied later by :func:`init_from_checkpoint`."""
    init = spec["init"]
    if init in ("none", "imagenet"):
        return init
    return init if _init_kind(init, f"{section}.model.init") == "encoder" else "none"


@contextlib.contextmanager
def _naming_init(spec: dict[str, Any], section: str) -> Iterator[None]:
    """Add the config key to an error about the ``init`` file raised while building (the
    encoder's loader knows the file, not the key)."""
    try:
        yield
    except InputError as exc:
        init = spec["init"]
        if init in ("none", "imagenet") or exc.path is None or exc.path.resolve() != Path(init).resolve():
            raise
        raise InputError(f"{exc.problem} (the config's {section}.model.init)", exc.path, exc.fix) from None


def build_semantic_model(spec: dict[str, Any]) -> DeepLab:
    """A DeepLab from the config's ``semantic.model`` section.

    ``init`` ``imagenet`` or an encoder weight file initialises the encoder here; a selfpanoptic
    model file is not applied here (:func:`init_from_checkpoint` does it). Keys that model files
    written before they existed lack take their defaults.
    """
    _check_drop_path(spec, "semantic")
    with _naming_init(spec, "semantic"):
        return DeepLab(
            num_classes=NUM_CLASSES, head=spec["head"], backbone=spec["backbone"],
            output_stride=spec["output_stride"], aspp_rates=tuple(spec["aspp_rates"]),
            channels=spec["channels"], weights=_encoder_weights(spec, "semantic"),
            drop_path=spec.get("drop_path", 0.0), embed_channels=spec.get("embed_channels", 256),
        )


def build_instance_model(spec: dict[str, Any]) -> EmbeddingUNet:
    """An embedding U-Net from the config's ``instance.model`` section (``init`` as in
    :func:`build_semantic_model`)."""
    _check_drop_path(spec, "instance")
    with _naming_init(spec, "instance"):
        return EmbeddingUNet(
            embedding_dim=spec["embedding_dim"], backbone=spec["backbone"],
            decoder_channels=spec["decoder_channels"], weights=_encoder_weights(spec, "instance"),
            drop_path=spec.get("drop_path", 0.0),
        )


LABEL_CHANNELS = NUM_CLASSES + 1
"""The translator's input: one channel per class plus the void channel (ignore, unlabelled)."""


def build_translator(spec: dict[str, Any]) -> SPADEGenerator:
    """A SPADE generator from the config's ``translation.generator`` section (label map -> image)."""
    return SPADEGenerator(label_channels=LABEL_CHANNELS, channels=spec["channels"], upsamplings=spec["upsamplings"],
                          style_dim=spec["style_dim"], spectral=spec["spectral_norm"])


def build_semantic_gan(spec: dict[str, Any]) -> SemanticGenerator:
    """SemanticGAN's generator from a generator file's spec: the ``semantic_gan.generator``
    section plus ``num_classes`` and ``size`` ((height, width) it draws at)."""
    return SemanticGenerator(num_classes=spec["num_classes"], size=tuple(spec["size"]), levels=spec["levels"],
                             channels=spec["channels"], max_channels=spec["max_channels"],
                             style_dim=spec["style_dim"], mapping_layers=spec["mapping_layers"])


def build_gan_encoder(spec: dict[str, Any]) -> StyleEncoder:
    """SemanticGAN's encoder from an encoder file's spec: ``stages`` and ``channels`` of
    ``semantic_gan.encoder`` plus its generator's ``num_styles`` and ``style_dim``."""
    return StyleEncoder(num_styles=spec["num_styles"], style_dim=spec["style_dim"], stages=spec["stages"],
                        channels=spec["channels"])


MODEL_KINDS = ("semantic", "instance", "translator", "semantic_gan", "gan_encoder")
_MODEL_FILES = {"translator": "results/translation/translator.pt",
                "semantic_gan": "results/semantic_gan/generator.pt", "gan_encoder": "results/semantic_gan/encoder.pt"}
_MODEL_FIX = "give a model file written by selfpanoptic's training (pretrain-* or selftrain-*)"


def _is_model_file(saved: Any) -> bool:
    return isinstance(saved, dict) and {"kind", "spec", "state_dict"} <= set(saved)


def load_model_file(path: str | Path, kind: str | None = None) -> dict[str, Any]:
    """Read a model file written by training: ``{"kind", "spec", "state_dict", ...}``.

    The one loader of model files. Weights only: a file holding pickled Python objects is
    refused (nothing in it runs). ``kind``: ``"semantic"`` or ``"instance"`` when the caller needs
    one. Any unreadable, foreign or wrong-kind file raises :class:`InputError` naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("model file does not exist", path, "run the training stage that writes it first")
    saved = read_torch_file(path, "torch model file", _MODEL_FIX)
    if not _is_model_file(saved):
        found = sorted(saved)[:6] if isinstance(saved, dict) else type(saved).__name__
        raise InputError(f"not a selfpanoptic model file (holds {found})", path, _MODEL_FIX)
    if saved["kind"] not in MODEL_KINDS:
        raise InputError(f"unknown model kind {saved['kind']!r}", path, _MODEL_FIX)
    if kind is not None and saved["kind"] != kind:
        article = {"semantic": "a", "instance": "an", "translator": "a", "semantic_gan": "a", "gan_encoder": "a"}
        raise InputError(f"is {article[saved['kind']]} {saved['kind']} model, but this command needs "
                         f"{article[kind]} {kind} model", path,
                         f"give the {kind} model file ({_MODEL_FILES.get(kind, f'results/<run>/{kind}/...model.pt')})")
    return saved


def _load_weights(model: nn.Module, state: dict[str, Any], path: str | Path, what: str, fix: str) -> None:
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:  # missing/unexpected keys, shape mismatches (classes, channels)
        first = str(exc).splitlines()[1:2] or [str(exc)]
        raise InputError(f"its weights do not fit {what} ({first[0].strip()[:160]})", path, fix) from None


def model_from_file(path: str | Path, kind: str | None = None) -> nn.Module:
    """Rebuild a trained model (semantic, instance or translator, checked against ``kind``) from its file, in eval mode."""
    return model_from_saved(load_model_file(path, kind), path)


def model_from_saved(saved: dict[str, Any], path: str | Path) -> nn.Module:
    """Rebuild a trained model, in eval mode, from what :func:`load_model_file` read from ``path``
    (for a caller that also needs the file's other entries: one read of the file)."""
    build = {"semantic": build_semantic_model, "instance": build_instance_model, "translator": build_translator,
             "semantic_gan": build_semantic_gan, "gan_encoder": build_gan_encoder}[saved["kind"]]
    try:
        model = build(dict(saved["spec"], init="none"))
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"its model spec cannot be built ({exc})", path, _MODEL_FIX) from None
    _load_weights(model, saved["state_dict"], path, "the model it describes", _MODEL_FIX)
    return model.eval()


def _init_fix(key: str) -> str:
    return (f"set {key} to none, imagenet, a model file written by selfpanoptic's training (pretrain-* or "
            "selftrain-*) or an encoder weight file (e.g. SegFormer's mit_b0.pth, a DINOv2 or torchvision .pth)")


@functools.lru_cache(maxsize=16)
def _cached_kind(path: str, mtime_ns: int, size: int) -> str:
    # keyed on the file's time and size so that a rewritten file is looked at again
    if Path(path).suffix == ".safetensors":  # selfpanoptic writes its model files with torch.save
        return "encoder"
    saved = read_torch_file(Path(path), "torch model or weight file", _MODEL_FIX, mmap=True)
    return "model" if _is_model_file(saved) else "encoder"


def _init_kind(init: str, key: str) -> str:
    """What the config's ``init`` (at ``key``, e.g. ``semantic.model.init``) names: ``"none"``,
    ``"imagenet"``, ``"model"`` (a selfpanoptic model file: whole-model initialisation) or
    ``"encoder"`` (any other weight file, for the encoder). The file's keys are read once (its
    tensors memory-mapped); a missing file raises :class:`InputError` naming ``key``."""
    if init in ("none", "imagenet"):
        return init
    path = Path(init)
    if not path.is_file():
        raise InputError(f"model file does not exist (the config's {key})", path, _init_fix(key))
    stat = path.stat()
    return _cached_kind(str(path.resolve()), stat.st_mtime_ns, stat.st_size)


def init_from_checkpoint(model: nn.Module, init: str, kind: str) -> None:
    """Apply ``init`` when it names a selfpanoptic model file: load its weights (of a ``kind`` model)
    into ``model``. ``none``, ``imagenet`` and encoder weight files were applied when the model
    was built (:func:`build_semantic_model`), so nothing is done for them."""
    if _init_kind(init, f"{kind}.model.init") != "model":
        return
    saved = load_model_file(init, kind)
    _load_weights(model, saved["state_dict"], init, f"the model that `{kind}.model` describes",
                  f"`{kind}.model.init` needs a model file of the same architecture as `{kind}.model` "
                  f"(backbone, head, widths): match them, or use init: none / imagenet / an encoder weight file")


__all__ = [
    "ENCODERS", "HEADS", "LABEL_CHANNELS", "MODEL_KINDS", "TRANSFORMERS",
    "DeepLab", "EmbeddingUNet", "ResNetEncoder", "SPADEGenerator", "SemanticGenerator", "StyleEncoder",
    "build_encoder", "build_gan_encoder", "build_instance_model", "build_semantic_gan", "build_semantic_model", "build_translator",
    "init_from_checkpoint", "load_model_file", "model_from_file", "model_from_saved",
]
