"""Source pretraining (and the target oracle) of the instance model: SPOCO losses on labelled instances."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..classes import IGNORE, class_id
from ..losses import spoco_loss
from ..models import build_instance_model, init_from_checkpoint
from ..segments import instance_majority_classes
from .data import CachedImages, sample_batch
from .engine import finish, pick_device, save_model_file, train

UNLABELLED_INSTANCE_CLASSES = ("truck", "train")
"""Synthia gives trucks and trains instance ids but no class: such instances (all pixels ignore)
belong to a group exactly when the group holds one of these classes."""


def group_instance_ids(labels: np.ndarray, instances: np.ndarray, group_ids: set[int]) -> np.ndarray:
    """Ids of the instances of an image whose majority class is in ``group_ids`` (trainIds).

    Instances without any labelled pixel count as members when the group holds truck or train.
    """
    ids, classes = instance_majority_classes(labels, instances)
    takes_unlabelled = any(class_id(c) in group_ids for c in UNLABELLED_INSTANCE_CLASSES)
    keep = np.isin(classes, list(group_ids)) | ((classes == IGNORE) & takes_unlabelled)
    return ids[keep]


def keep_instances(instances: torch.Tensor, keep: list[np.ndarray]) -> torch.Tensor:
    """Zero every instance of image b whose id is not in ``keep[b]``. instances: (B, H, W) int64."""
    out = instances.clone()
    for b, ids in enumerate(keep):
        out[b][~torch.isin(out[b], torch.as_tensor(ids, dtype=out.dtype))] = 0
    return out


def train_instance(
    cache_path: str | Path, out: str | Path, work_dir: str | Path, settings: dict[str, Any], group: str,
    device: str = "auto", progress: bool = True, desc: str = "pretrain instance",
) -> None:
    """Train an embedding U-Net on the instances of one class group in ``cache_path``.

    ``settings`` is the config's ``instance`` section; ``group`` names one of its ``groups``.
    """
    spec, train_settings, loss_settings = settings["model"], settings["train"], settings["loss"]
    group_ids = {class_id(name) for name in settings["groups"][group]}
    torch.manual_seed(train_settings["seed"])
    model = build_instance_model(spec)
    init_from_checkpoint(model, spec["init"])
    cache = CachedImages(cache_path)
    members = [group_instance_ids(cache.read("labels", i), cache.read("instances", i), group_ids) for i in range(len(cache))]
    indices = np.array([i for i, ids in enumerate(members) if len(ids)])
    if len(indices) == 0:
        raise ValueError(f"no image of {cache_path} has an instance of group {group!r} ({settings['groups'][group]})")
    crop = tuple(train_settings["crop"])
    dev = pick_device(device)
    delta_v, delta_d = loss_settings["delta_v"], loss_settings["delta_d"]

    def loss_step(net: torch.nn.Module, rng: np.random.Generator, _: int):
        images, labels, instances, keep = sample_group_batch(rng)
        instances = keep_instances(instances, keep).to(dev)
        emb = net(images.to(dev)).float()
        unlabelled = None
        if loss_settings["unlabelled_weight"] > 0:
            unlabelled = (instances == 0) & (labels.to(dev) == IGNORE)
        loss, parts = spoco_loss(
            emb, instances, unlabelled,
            weights={"dice": loss_settings["dice_weight"], "unlabelled": loss_settings["unlabelled_weight"]},
            delta_v=delta_v, delta_d=delta_d,
            alpha=loss_settings["alpha"], beta=loss_settings["beta"], gamma=loss_settings["gamma"],
        )
        logged = {k: float(v.detach()) for k, v in parts.items()}
        return loss, logged, len(images)

    def sample_group_batch(rng: np.random.Generator):
        chosen = rng.choice(indices, size=train_settings["batch_size"], replace=len(indices) < train_settings["batch_size"])
        images, labels, instances = sample_batch(
            cache, rng, chosen, len(chosen), crop, train_settings["hflip"], train_settings["jitter"], shuffle=False
        )
        return images, labels, instances, [members[i] for i in chosen]

    identity = {"settings": settings, "group": group, "data": str(cache_path)}
    result = train(model, loss_step, train_settings, work_dir, identity, dev, desc, progress)
    save_model_file(out, model, "instance", spec, {
        "group": group, "classes": settings["groups"][group], "delta_v": delta_v, "delta_d": delta_d,
        "train_seconds": result.seconds, "images_per_second": result.images_per_second,
    })
    finish(work_dir)
    cache.close()
    print(f"{desc} [{group}]: {result.steps} steps in {result.seconds:.1f} s ({result.images_per_second:.1f} images/s) -> {out}")
