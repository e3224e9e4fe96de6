"""Checks of a config's values that its schema cannot express, each raising one
:class:`~selfpanoptic.errors.InputError` that names the key and the fix.

:func:`selfpanoptic.config.validate_config` runs them: keys YAML read as booleans or numbers,
NaN and infinity, sliding-window gaps, inference scales under the models' output stride,
stochastic depth on a ResNet, image-folder keys on a fixed-layout dataset, absolute globs, split
names an image-folder target shares, a ``results`` folder that is no folder of its own, warm-ups
longer than their training.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from .config_sources import yaml_reading
from .errors import InputError

__all__ = ["IMAGE_FOLDER_KEYS", "TRANSFORMER_OUTPUT_STRIDE", "check_finite", "check_globs", "check_inference",
           "check_key_names", "check_layout_keys", "check_process_batches", "training_processes", "check_models", "check_results", "check_scales", "check_splits",
           "check_warmup", "is_resnet", "train_sections"]


def check_key_names(value: Any, path: str, source: str | Path) -> None:
    """Every key of every map must be a string: YAML 1.1 reads unquoted ``off``, ``on``, ``yes``,
    ``no`` as booleans (an experiment ``off:`` would be named False) and digits as numbers."""
    if isinstance(value, list):
        for index, item in enumerate(value):
            check_key_names(item, f"{path}.{index}" if path else str(index), source)
    if not isinstance(value, dict):
        return
    for key, item in value.items():
        if not isinstance(key, str):
            raise InputError(
                f"invalid config: {path or 'the config'} has a key that YAML read as {yaml_reading(key)}, not as a "
                "name (unquoted off, on, yes, no, true and false are booleans, digits are numbers)", source,
                "quote the key as it is written in the file, e.g. 'off':")
        check_key_names(item, f"{path}.{key}" if path else key, source)


def check_finite(value: Any, path: str, source: str | Path) -> None:
    """Every number must be finite: YAML reads ``.nan`` and ``.inf`` (JSON ``NaN``), and NaN passes
    every ``minimum`` and ``maximum`` of the schema (each comparison with it is false)."""
    if isinstance(value, float) and not math.isfinite(value):
        raise InputError(f"invalid config: config key {path or '(top level)'!r} is {value}, not a finite number", source,
                         "write a finite number (YAML reads .nan, .inf and -.inf as not-a-number and infinity)")
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        check_finite(item, f"{path}.{key}" if path else str(key), source)


def check_inference(config: dict[str, Any], source: str | Path) -> None:
    """Sliding windows must not leave gaps: ``inference.stride`` at most ``inference.crop`` in
    each dimension (checked in any mode, so switching to slide cannot fail later)."""
    section = config.get("inference")
    if not section:
        return
    for axis, stride, crop in zip(("height", "width"), section["stride"], section["crop"]):
        if stride > crop:
            raise InputError(
                f"invalid config: inference.stride {section['stride']} exceeds inference.crop {section['crop']} "
                f"in {axis} ({stride} > {crop}): sliding windows would skip pixels",
                source, "set inference.stride to at most inference.crop in each dimension",
            )


def check_scales(scales: list[float], size: tuple[int, int], stride: int, model: str, source: str | Path,
                 size_from: str = "data.height x data.width", larger: str = "raise data.height and data.width") -> None:
    """Refuse ``inference.scales`` that shrink the ``size`` working image below ``stride``, the
    output stride of ``model`` (or below the whole side when it is shorter): the deepest features
    would cover less than one cell per side. ``size_from`` says where the size comes from,
    ``larger`` how to raise it."""
    height, width = size
    for scale in scales:
        scaled = (round(height * scale), round(width * scale))
        if scaled[0] >= min(stride, height) and scaled[1] >= min(stride, width):
            continue
        smallest = max(min(stride, height) / height, min(stride, width) / width)
        raise InputError(
            f"invalid config: inference.scales has {scale}, which makes the {height}x{width} working image "
            f"({size_from}) {scaled[0]}x{scaled[1]} pixels, under {stride} pixels a side, {model} output stride",
            source, f"use scales of at least {smallest:.4g} for a {height}x{width} working image, or {larger}",
        )


TRANSFORMER_OUTPUT_STRIDE = 32
"""Output stride of every transformer encoder (``mit_b*``, ``dinov2_*``): they are not dilated."""


def is_resnet(backbone: str) -> bool:
    """Whether a ``model.backbone`` is a ResNet (dilatable, no stochastic depth) rather than a transformer."""
    return backbone.startswith("resnet")


def check_models(config: dict[str, Any], source: str | Path) -> None:
    """``model.drop_path`` (stochastic depth) exists in transformer encoders only."""
    for section in ("semantic", "instance"):
        model = config[section]["model"]
        if model.get("drop_path", 0) > 0 and is_resnet(model["backbone"]):
            raise InputError(
                f"invalid config: {section}.model.drop_path is {model['drop_path']}, but {section}.model.backbone "
                f"{model['backbone']} has no stochastic depth", source,
                f"set {section}.model.drop_path to 0, or choose a transformer backbone (mit_b0 ... mit_b5, dinov2_vits14, "
                "dinov2_vitb14)")


IMAGE_FOLDER_KEYS: tuple[str, ...] = ("train_glob", "val_glob", "val_labels")
"""Keys that choose the files of a dataset of format ``images``; the other formats ignore them."""

LAYOUTS = {"cityscapes": "leftImg8bit/<split>/ and gtFine/<split>/ below its root"}
"""Where a fixed-layout format finds its files, for messages."""


def check_layout_keys(config: dict[str, Any], source: str | Path, schema: dict[str, Any]) -> None:
    """A fixed-layout dataset (``format: cityscapes``) finds its files itself: refuse the
    :data:`IMAGE_FOLDER_KEYS` it would silently ignore. Only values other than the schema's
    defaults (``schema``: the config schema) count as set, so that the defaults stay valid."""
    for name, dataset in config["datasets"].items():
        fmt = dataset.get("format")
        if fmt in (None, "images"):  # synthia and gta: one layout, and none of these keys
            continue
        defaults = schema["properties"]["datasets"]["properties"][name]["properties"]
        given = [key for key in IMAGE_FOLDER_KEYS if key in dataset and dataset[key] != defaults[key].get("default")]
        if not given:
            continue
        keys = " and ".join(f"datasets.{name}.{key} ({dataset[key]!r})" for key in given)
        layout = LAYOUTS.get(fmt, "its fixed layout below its root")
        raise InputError(
            f"invalid config: {keys} {'is' if len(given) == 1 else 'are'} set, but datasets.{name}.format {fmt} finds "
            f"its files itself ({layout}; splits by train_split and val_split), so {'it' if len(given) == 1 else 'they'} "
            "would be ignored", source,
            f"remove {' and '.join(f'datasets.{name}.{key}' for key in given)}, or set datasets.{name}.format: images "
            "to choose the files by glob")


def check_splits(config: dict[str, Any], source: str | Path) -> None:
    """An ``images`` target's ``train_split`` and ``val_split`` name the index and cache of
    ``train_glob`` and ``val_glob``: one name for both would read the train glob for both splits
    and silently drop ``val_glob`` and ``val_labels``."""
    target = config["datasets"]["target"]
    if target["format"] != "images" or target["train_split"] != target["val_split"]:
        return
    raise InputError(
        f"invalid config: datasets.target.train_split and datasets.target.val_split are both "
        f"{target['train_split']!r}; with format images they name the results of train_glob and val_glob, "
        "which would share one index and cache", source,
        "give them different names, e.g. train and val (to self-train on the val images, set "
        "datasets.target.train_glob to datasets.target.val_glob)")


def check_globs(config: dict[str, Any], source: str | Path) -> None:
    """``datasets.target.train_glob`` / ``val_glob`` are matched below ``datasets.target.root``:
    they must be relative (pathlib refuses absolute patterns) and not empty."""
    target = config["datasets"]["target"]
    for key in ("train_glob", "val_glob"):
        pattern, name = target[key], f"datasets.target.{key}"
        example = "train/**/*.png" if key == "train_glob" else "val/**/*.png"
        if not pattern.strip():
            raise InputError(f"invalid config: {name} is empty", source,
                             f"give a glob relative to datasets.target.root, e.g. {example!r}")
        if not (Path(pattern).is_absolute() or pattern.startswith(("/", "\\"))):
            continue
        root = Path(target["root"])
        relative = None
        for base in (root, root.absolute()):
            try:
                relative = Path(pattern).relative_to(base).as_posix()
                break
            except ValueError:
                pass
        fix = (f"write it relative to datasets.target.root ({target['root']}): {relative!r}" if relative else
               f"write it relative to datasets.target.root ({target['root']}), e.g. {example!r}, and set "
               "datasets.target.root to the folder the images are under")
        raise InputError(f"invalid config: {name} {pattern!r} is an absolute path; it is matched below "
                         "datasets.target.root", source, fix)


def check_results(config: dict[str, Any], source: str | Path) -> None:
    """``results`` receives every output and the workflow deletes outputs in it: it must name a
    folder of its own, neither empty (the current folder) nor the root of a file system."""
    results = config["results"]
    if not results.strip():
        raise InputError("invalid config: results is empty", source,
                         "name the folder that receives every output, e.g. results: results")
    absolute = Path(os.path.abspath(results))
    if absolute == absolute.parent:
        raise InputError(f"invalid config: results is {results!r}, the root of a file system", source,
                         "name a folder of its own for every output, e.g. results: results")


def train_sections(section: Any, path: str) -> list[tuple[str, dict[str, Any]]]:
    """``(key path, train section)`` of every ``train`` map below a config section."""
    if not isinstance(section, dict):
        return []
    found = []
    for key, value in section.items():
        if key == "train" and isinstance(value, dict):
            found.append((f"{path}.train", value))
        found += train_sections(value, f"{path}.{key}")
    return found


def check_warmup(config: dict[str, Any], source: str | Path) -> None:
    """A learning-rate warm-up fits in its training: ``warmup_steps`` at most ``steps``, in every train section."""
    for section, value in config.items():
        if section == "experiments":  # partial sections: each experiment's whole config is checked apart
            continue
        for key, train in train_sections(value, section):
            if train.get("warmup_steps", 0) > train.get("steps", 0):
                raise InputError(
                    f"invalid config: {key}.warmup_steps {train['warmup_steps']} exceeds {key}.steps {train['steps']}",
                    source, f"set {key}.warmup_steps to at most {key}.steps (0: no warm-up)")


def training_processes(config: dict[str, Any]) -> int:
    """Ranks of each training job: ``resources.train.processes``, or one per GPU of the job (at least 1)."""
    train = config.get("resources", {}).get("train", {})
    return train.get("processes") or max(1, train.get("gpu", 1))


def check_process_batches(config: dict[str, Any], source: str | Path) -> None:
    """Every batch size of a training section splits evenly over the ranks of a training job
    (each rank computes an equal slice of the global batch)."""
    processes = training_processes(config)
    if processes == 1:
        return
    sizes = [pair for section, value in config.items() if section not in ("experiments", "resources")
             for pair in _batch_sizes(value, section)]
    instance = config.get("selftrain", {}).get("instance", {})
    if instance.get("train"):
        # instance self-training splits its batch into source and target crops, each over the ranks
        batch = instance["train"]["batch_size"]
        crops = int(round(instance.get("source_fraction", 0.0) * batch))
        sizes.append(("selftrain.instance.source_fraction x train.batch_size (rounded)", crops))
    for path, value in sizes:
        if value % processes:
            raise InputError(
                f"invalid config: {path} is {value}, which does not split evenly over the {processes} processes "
                "of a training job (resources.train)", source,
                f"make {path} a multiple of {processes}, or change resources.train.processes / gpu")


def _batch_sizes(section: Any, path: str) -> list[tuple[str, int]]:
    """``(key path, value)`` of every ``*batch_size`` key below a config section (0: none drawn)."""
    if not isinstance(section, dict):
        return []
    found = []
    for key, value in section.items():
        if key.endswith("batch_size") and isinstance(value, int) and value > 0:
            found.append((f"{path}.{key}", value))
        found += _batch_sizes(value, f"{path}.{key}")
    return found
