"""The training step of instance pretraining (and the oracle): SPOCO losses on labelled instances of a group."""

from __future__ import annotations

import numpy as np
import torch

from ..classes import IGNORE, class_id
from ..errors import InputError
from ..intermediates import DatasetCache
from ..losses import spoco_loss
from ..segments import instance_majority_classes
from ..settings import InstanceLossSettings, TrainSettings
from .data import TranslatedImages, choose_images, sample_batch
from .engine import TrainingStep
from .visuals import embedding_images, instance_images, normalised_images

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


def instance_step(
    cache: DatasetCache, classes: list[str], settings: TrainSettings, loss: InstanceLossSettings,
    device: torch.device, translated: TranslatedImages | None = None,
) -> TrainingStep:
    """The :class:`~selfpanoptic.train.engine.TrainingStep` of SPOCO pretraining of one group.

    ``classes``: the group's class names; ``settings``: instance training; ``loss``: the SPOCO
    loss. Each step draws ``batch_size`` crops of images holding an instance of the group;
    instances of other classes are zeroed. ``translated``: source images rendered in the
    target's look, drawn instead of the originals with its share.
    """
    group_ids = {class_id(name) for name in classes}
    members = [group_instance_ids(cache.read("labels", i), cache.read("instances", i), group_ids) for i in range(len(cache))]
    indices = np.array([i for i, ids in enumerate(members) if len(ids)])
    if len(indices) == 0:
        raise InputError(f"no image has an instance of the class group {classes}", cache.path,
                         "train this group on a dataset with such instances, or change instance.groups")

    def prepare(rng: np.random.Generator, index: int):
        chosen = choose_images(rng, indices, settings.batch_size)
        images, labels, instances, _ = sample_batch(
            cache, rng, chosen, len(chosen), settings.crop, settings.hflip, settings.jitter, shuffle=False,
            translated=translated,
        )
        return images, labels, keep_instances(instances, [members[i] for i in chosen])

    def compute(net: torch.nn.Module, prepared, rng: np.random.Generator, index: int):
        images, labels, instances = prepared
        instances = instances.to(device, non_blocking=True)
        emb = net(images.to(device, non_blocking=True)).float()
        unlabelled = None
        if loss.unlabelled_weight > 0:
            unlabelled = (instances == 0) & (labels.to(device, non_blocking=True) == IGNORE)
        total, parts = spoco_loss(emb, instances, unlabelled, **loss.spoco_arguments())

        def visualise():
            return {"input": normalised_images(images), "embedding": embedding_images(emb),
                    "instances": instance_images(instances)}

        return total, {k: v.detach() for k, v in parts.items()}, len(images), visualise

    return TrainingStep(prepare, compute, caches=(cache,) + ((translated.cache,) if translated is not None else ()))
