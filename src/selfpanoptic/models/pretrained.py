"""Offline pretrained weights for the encoders: find a local file, read it, remap its keys, load it.

Nothing here touches the network. ``weights="imagenet"`` means "the released file of this
backbone, already in the torch hub cache" (``$TORCH_HOME/hub/checkpoints``, where torchvision
keeps its ResNet weights too); ``weights=<path>`` means that file. A missing file, an unreadable
file or weights that do not fit raise one :class:`~selfpanoptic.errors.InputError` naming the
file and the fix.

File names looked up for ``imagenet`` (the first that exists is used; :func:`resolve_weights`
tells which file an ``init`` names without reading it):

- ``resnet18`` ... ``resnet101``: torchvision's ImageNet file, by the name torchvision caches it
  under (e.g. ``resnet101-cd907fc2.pth``).
- ``mit_b0`` ... ``mit_b5``: ``mit_b{N}.pth``, the SegFormer release (NVlabs/SegFormer, also
  what DAFormer uses; NVIDIA Source Code License, research / evaluation only). ``mit_b5`` also
  takes ``pvt_v2_b5.pth`` (the PVTv2 release, Apache-2.0): PVTv2-B5 has exactly MiT-B5's
  hyper-parameters and the same key layout. PVTv2 B0-B4 do not fit MiT B0-B4 (MLP ratio 8
  instead of 4), so their files are not looked for.
- ``dinov2_vits14`` / ``dinov2_vitb14``: ``dinov2_vits14_pretrain.pth`` /
  ``dinov2_vitb14_pretrain.pth``, Meta's DINOv2 release (Apache-2.0).

Keys are remapped by timm's own ``checkpoint_filter_fn`` (``timm.models.pvt_v2`` for the
SegFormer / PVTv2 layout, ``timm.models.vision_transformer`` for DINOv2's), so a file in timm's
layout (e.g. timm's ``model.safetensors``) loads too.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from ..errors import InputError

IMAGENET_FILES: dict[str, tuple[str, ...]] = {
    **{f"mit_b{n}": (f"mit_b{n}.pth",) for n in range(5)},
    "mit_b5": ("mit_b5.pth", "pvt_v2_b5.pth"),
    "dinov2_vits14": ("dinov2_vits14_pretrain.pth",),
    "dinov2_vitb14": ("dinov2_vitb14_pretrain.pth",),
}
"""Backbone name -> file names looked for in ``$TORCH_HOME/hub/checkpoints``, in order."""

_SEGFORMER = ("the SegFormer release (https://github.com/NVlabs/SegFormer, README 'ImageNet-1K pretrained "
              "weights'; DAFormer's README links the same files; NVIDIA Source Code License: research / "
              "evaluation only)")
_PVT_B5 = "https://github.com/whai362/PVT/releases/download/v2/pvt_v2_b5.pth"
_DINOV2 = "https://dl.fbaipublicfiles.com/dinov2/{arch}/{arch}_pretrain.pth"
_NONE = "or set the model's `init` to `none` (random initialisation)"


def checkpoint_dir() -> Path:
    """The torch hub checkpoint folder, ``$TORCH_HOME/hub/checkpoints`` (read at each call)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def _resnet_url(name: str) -> str:
    """The download address of torchvision's ImageNet weights of ResNet ``name`` (torchvision is
    imported here, not at module import: only ResNet look-ups need it)."""
    from .backbones import RESNETS

    return RESNETS[name][1].url


def imagenet_file_names(name: str) -> tuple[str, ...]:
    """The file names ``imagenet`` looks for in :func:`checkpoint_dir`, in order: :data:`IMAGENET_FILES`
    for a transformer, the name of torchvision's file (as torchvision caches it) for a ResNet."""
    if name in IMAGENET_FILES:
        return IMAGENET_FILES[name]
    return (Path(_resnet_url(name)).name,)


def _where_to_get(name: str, target: Path) -> str:
    """The fix of a missing ImageNet file: where to download it and where to put it."""
    if name.startswith("mit_"):
        source = f"{target.name} from {_SEGFORMER}"
        if name == "mit_b5":
            source += f", or the Apache-2.0 PVTv2-B5 file {_PVT_B5} (same network, same keys)"
    elif name.startswith("dinov2_"):
        source = _DINOV2.format(arch=name)
    else:
        source = f"{_resnet_url(name)} (torchvision's ImageNet weights)"
    return (f"download {source} on a machine with internet access and copy it to {target} (or set TORCH_HOME, "
            f"or give the file's path instead of `imagenet`), {_NONE}")


def find_imagenet_file(name: str, folder: Path | None = None) -> Path:
    """The local ImageNet (DINOv2: LVD-142M) weight file of backbone ``name``; never downloads, never reads it.

    ``folder``: where to look, :func:`checkpoint_dir` when None.

    Raises
    ------
    InputError
        None of :func:`imagenet_file_names` is in ``folder``; the message names every path looked
        at and where to get the file.
    """
    folder = checkpoint_dir() if folder is None else Path(folder)
    candidates = [folder / file_name for file_name in imagenet_file_names(name)]
    for path in candidates:
        if path.is_file():
            return path
    also = f" (also looked for {', '.join(str(path) for path in candidates[1:])})" if len(candidates) > 1 else ""
    raise InputError(f"ImageNet weights for {name} are not available offline{also}",
                     candidates[0], _where_to_get(name, candidates[0]))


def resolve_weights(name: str, weights: str | Path, folder: Path | None = None) -> Path | None:
    """The file that ``weights`` ("none", "imagenet" or a path) names for backbone ``name``; None for "none".

    Answers "which file would this load, and where was it looked for" without reading it: the
    workflow calls it at start for every ``init`` (:mod:`selfpanoptic.preflight`), the encoders
    before building. ``folder``: where ``imagenet`` looks, :func:`checkpoint_dir` when None.

    Raises
    ------
    InputError
        The file is missing, naming every path looked at and where to get it.
    """
    if str(weights) == "none":
        return None
    if str(weights) == "imagenet":
        return find_imagenet_file(name, folder)
    path = Path(weights)
    if not path.is_file():
        where = folder if folder is not None else checkpoint_dir()
        raise InputError(f"weight file for the {name} encoder does not exist", path,
                         f"give an existing file, `imagenet` (the released file in {where}), {_NONE}")
    return path


def read_torch_file(path: Path, what: str, fix: str, mmap: bool = False) -> Any:
    """``torch.load`` of a weights-only file; an unreadable or unsafe one raises :class:`InputError`.

    Parameters
    ----------
    path : pathlib.Path
        A torch save file.
    what : str
        What the file should be, for the message (``torch model file``, ``weight file``).
    fix : str
        The message's fix.
    mmap : bool
        Map the tensors instead of reading them (cheap when only the keys are wanted; zip-format
        files only, so a legacy-format file is read whole).

    Raises
    ------
    InputError
        Naming the file: it holds pickled Python objects besides tensors (never loaded: nothing
        in a file runs), or it is not a torch save file (text, truncated, another format).
    """
    try:
        try:
            return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
        except RuntimeError as exc:
            if not mmap or "mmap" not in str(exc):
                raise
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # torch's own text suggests weights_only=False, which would run the file's code: never say so
        if "Unsupported global" in str(exc):
            raise InputError("file holds pickled Python objects besides tensors; they are not loaded, for safety",
                             path, fix) from None
        raise InputError(f"not a readable {what} (not a torch save file, or truncated)", path, fix) from None
    except Exception as exc:  # torch raises RuntimeError, EOFError, IndexError, ... for foreign files
        first = (str(exc).splitlines() or [""])[0][:120]
        raise InputError(f"not a readable {what} ({type(exc).__name__}{': ' + first if first else ''})",
                         path, fix) from None


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Tensors of a weight file (torch save file or ``.safetensors``), unwrapped from ``state_dict``/``model``.

    A segmentor checkpoint (mmseg: ``backbone.*``, ``decode_head.*``) gives its backbone part.

    Weights only: a torch file holding pickled Python objects is refused (nothing in it runs).
    """
    fix = "give a backbone weight file (a state dict of tensors), or use `imagenet` / `none`"
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            state = load_file(str(path), device="cpu")
        except Exception as exc:  # safetensors raises its own error types for foreign or truncated files
            first = (str(exc).splitlines() or [""])[0][:120]
            raise InputError(f"not a readable weight file ({type(exc).__name__}: {first})", path, fix) from None
    else:
        state = read_torch_file(path, "weight file", fix)
    for wrapper in ("state_dict", "model"):  # training checkpoints nest the weights
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise InputError(f"not a state dict of tensors (holds {type(state).__name__})", path, fix)
    return _backbone_part(dict(state))


def _backbone_part(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The ``backbone.*`` weights of an mmseg segmentor checkpoint (DAFormer's, SegFormer's), else ``state``."""
    prefix = "backbone."
    if any(k.startswith("patch_embed") for k in state) or not any(k.startswith(prefix) for k in state):
        return state
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def _mismatch(model_state: dict[str, torch.Tensor], state: dict[str, torch.Tensor]) -> str:
    """Text listing the first missing, unexpected and wrongly shaped keys; empty when they all fit."""
    missing = [k for k in model_state if k not in state]
    unexpected = [k for k in state if k not in model_state]
    shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}" for k, v in model_state.items()
              if k in state and state[k].shape != v.shape]
    parts = []
    for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape (file vs model)", shapes)):
        if keys:
            parts.append(f"{len(keys)} {label}: {', '.join(keys[:4])}{', ...' if len(keys) > 4 else ''}")
    return "; ".join(parts)


def load_timm_weights(model: nn.Module, path: Path, name: str, filter_fn: Callable) -> None:
    """Load the file ``path`` into the timm ``model`` of backbone ``name``, strictly apart from ``head.*``.

    ``filter_fn(state_dict, model)`` is timm's ``checkpoint_filter_fn`` of the model's family: it
    maps the released key layout onto timm's (and resamples position embeddings if needed). The
    classifier (``head.*``) of a classification checkpoint is dropped; the encoders have none.

    Raises
    ------
    InputError
        The file is unreadable, or any other key is missing, unexpected or of another shape.
    """
    state = read_state_dict(path)
    try:
        state = filter_fn(state, model)
    except Exception as exc:  # a foreign layout can trip the remapping itself (shapes, missing keys)
        raise InputError(f"its keys cannot be mapped onto {name} ({type(exc).__name__}: {str(exc)[:120]})", path,
                         f"give the {name} file of the release, `imagenet` or `none`") from None
    state = {k: v for k, v in state.items() if not k.startswith("head.")}
    problem = _mismatch(model.state_dict(), state)
    if problem:
        raise InputError(f"its weights do not fit the {name} encoder ({problem})", path,
                         f"give the {name} file of the release (see `imagenet`), {_NONE}")
    model.load_state_dict(state, strict=True)


def load_resnet_file(encoder: nn.Module, path: Path, name: str) -> None:
    """Load a torchvision-layout ResNet state dict (``conv1``, ``bn1``, ``layer1``..., ``fc``) into a ResNetEncoder.

    The encoder keeps torchvision's names apart from its stem (``stem.0`` = ``conv1``,
    ``stem.1`` = ``bn1``); ``fc.*`` (the classifier) is dropped. Dilation does not change weights.
    """
    def rename(key: str) -> str:
        for old, new in (("conv1.", "stem.0."), ("bn1.", "stem.1.")):
            if key.startswith(old):
                return new + key[len(old):]
        return key

    state = {rename(k): v for k, v in read_state_dict(path).items() if not k.startswith("fc.")}
    problem = _mismatch(encoder.state_dict(), state)
    if problem:
        raise InputError(f"its weights do not fit the {name} encoder ({problem})", path,
                         f"give a torchvision {name} state dict, `imagenet` or `none`")
    encoder.load_state_dict(state, strict=True)
