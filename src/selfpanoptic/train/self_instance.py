"""The training step of one round of instance self-training (SPOCO-style) of one class group.

Each step takes ``batch_size`` images, ``source_fraction`` of them labelled source images (their
ground-truth instances of the group, against forgetting) and the rest target crops. For a target
crop the EMA network's embeddings are clustered inside the semantic prediction of the same round
for each class of the group, keeping large, confidently segmented masks
(:func:`~selfpanoptic.pseudo.masks.pseudo_instances_batch`, the function the ``pseudo-instance`` stage
also uses); the student learns the SPOCO losses on source instances and target pseudo instances
together, plus the rotation-consistency term: the EMA network sees the crop rotated by a random
angle, its embeddings are rotated back and compared with the student's through soft masks
around shared anchors (:func:`~selfpanoptic.losses.consistency.embedding_consistency_loss`). The
EMA network follows the student every step and is checkpointed with it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from ..augment.crops import random_crop_flip
from ..augment.views import rotate_maps, rotation_affines
from ..intermediates import DatasetCache
from ..losses import spoco_loss
from ..losses.consistency import embedding_consistency_loss, sample_anchors
from ..pseudo.masks import pseudo_instances_batch
from ..pseudo.objectness import Objectness
from ..pseudo.teacher import freeze_batchnorm, momentum_update
from ..augment.normalise import normalise
from .data import sample_batch
from .engine import TrainingStep
from .instance import group_instance_ids, keep_instances
from .visuals import MAX_IMAGES, embedding_images, instance_images, label_images, normalised_images


def self_instance_step(
    ema: nn.Module, classes: list[int], target: DatasetCache, semantic: np.ndarray, confidence: np.ndarray,
    source: DatasetCache | None, settings: dict[str, Any], loss_settings: dict[str, Any], device: torch.device,
    stats: dict[str, int], objectness: Objectness | None = None,
) -> TrainingStep:
    """The :class:`~selfpanoptic.train.engine.TrainingStep` of SPOCO self-training of a group.

    ``ema``: the EMA network (moved in place); ``classes``: the group's thing trainIds;
    ``semantic`` (N, H, W) uint8 and ``confidence`` (N, H, W) float32: this round's semantic
    prediction on ``target``; ``source``: labelled cache mixed into each batch, or None;
    ``settings``: ``selftrain.instance``; ``loss_settings``: ``instance.loss``; ``stats``: counts
    ``pseudo_instances`` made; ``objectness``: the fitted objectness classifier that filters the
    pseudo instances (``settings["objectness"]["min_score"]``), or None.
    """
    train_settings = settings["train"]
    batch = train_settings["batch_size"]
    n_source = int(round(settings["source_fraction"] * batch)) if source is not None else 0
    members, source_indices = [], np.zeros(0, dtype=np.int64)
    if n_source:
        group_ids = set(classes)
        members = [group_instance_ids(source.read("labels", i), source.read("instances", i), group_ids)
                   for i in range(len(source))]
        source_indices = np.array([i for i, ids in enumerate(members) if len(ids)], dtype=np.int64)
        if len(source_indices) == 0:
            n_source = 0
    n_target = batch - n_source
    crop = tuple(train_settings["crop"])
    delta_v, delta_d = loss_settings["delta_v"], loss_settings["delta_d"]
    stats.setdefault("pseudo_instances", 0)

    def target_batch(rng: np.random.Generator) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
        chosen = rng.choice(len(target), size=n_target, replace=len(target) < n_target)
        images, semantics, confidences = [], [], []
        for i in chosen:
            img, sem, conf = random_crop_flip(rng, [target.read("images", i), semantic[i], confidence[i]], crop,
                                              train_settings["hflip"])
            images.append(img)
            semantics.append(np.ascontiguousarray(sem))
            confidences.append(np.ascontiguousarray(conf))
        return normalise(np.stack(images)), np.stack(semantics), np.stack(confidences)

    def prepare(rng: np.random.Generator, index: int):
        source_part = None
        if n_source:
            chosen = rng.choice(source_indices, size=n_source, replace=len(source_indices) < n_source)
            src_images, _, src_instances, _ = sample_batch(
                source, rng, chosen, n_source, crop, train_settings["hflip"], train_settings["jitter"], shuffle=False
            )
            source_part = (src_images, keep_instances(src_instances, [members[i] for i in chosen]))
        return source_part, (target_batch(rng) if n_target else None)

    def compute(net: nn.Module, prepared, rng: np.random.Generator, index: int):
        if index > 0:
            momentum_update(ema, net, settings["ema_momentum"])
        if settings["freeze_bn"]:
            freeze_batchnorm(net)
        source_part, target_part = prepared
        images, instances = [], []
        if source_part is not None:
            images.append(source_part[0].to(device, non_blocking=True))
            instances.append(source_part[1].to(device, non_blocking=True))
        parts: dict[str, float] = {}
        if target_part is not None:
            tgt_images, tgt_semantic, tgt_confidence = target_part
            tgt_images = tgt_images.to(device, non_blocking=True)
            with torch.no_grad():
                ema_embeddings = ema(tgt_images).float()
            # every image and class of the batch clustered in one call (no per-image host round trips)
            pseudo = [instances for instances, _ in pseudo_instances_batch(
                ema_embeddings, tgt_semantic, tgt_confidence, classes, delta_v, delta_d, settings["min_size"],
                settings["min_confidence"], device=device, objectness=objectness,
                min_objectness=settings["objectness"]["min_score"])]
            stats["pseudo_instances"] += sum(int(p.max()) for p in pseudo)
            parts["pseudo_per_image"] = float(np.mean([p.max() for p in pseudo]))
            images.append(tgt_images)
            instances.append(torch.from_numpy(np.stack(pseudo).astype(np.int64)).to(device, non_blocking=True))
        images, instances = torch.cat(images), torch.cat(instances)
        embeddings = net(images).float()
        loss, loss_parts = spoco_loss(
            embeddings, instances,
            weights={"dice": loss_settings["dice_weight"]}, delta_v=delta_v, delta_d=delta_d,
            alpha=loss_settings["alpha"], beta=loss_settings["beta"], gamma=loss_settings["gamma"],
        )
        parts.update({"spoco": loss.detach(), "dice": loss_parts["dice"].detach()})
        if target_part is not None and settings["consistency_weight"] > 0:
            angles = rng.uniform(0.0, settings["max_rotation"], size=n_target)
            height, width = tgt_images.shape[-2:]
            rotated, _ = rotate_maps(tgt_images, rotation_affines(angles, height, width))
            with torch.no_grad():
                back, valid = rotate_maps(ema(rotated).float(), rotation_affines(-angles, height, width))
            things = torch.from_numpy(np.isin(tgt_semantic, classes)).to(device)
            anchors = sample_anchors(valid & things, settings["consistency_anchors"], rng)
            consistency = embedding_consistency_loss(embeddings[n_source:], back, valid, anchors, delta_v)
            loss = loss + settings["consistency_weight"] * consistency
            parts["consistency"] = consistency.detach()

        def visualise():
            """Target crops first (their instances are pseudo instances, inside the round's semantic
            prediction), then source crops (ground-truth instances)."""
            shown = [*range(n_source, len(images)), *range(n_source)][:MAX_IMAGES]
            pictures = {"input": normalised_images(images[shown]), "embedding": embedding_images(embeddings[shown]),
                        "instances": instance_images(instances[shown])}
            if target_part is not None:
                pictures["semantic"] = label_images(torch.from_numpy(tgt_semantic))
            return pictures

        return loss, parts, len(embeddings), visualise

    return TrainingStep(prepare, compute, caches=(target,) + ((source,) if n_source else ()))
