"""Instance self-training of one round and class group (SPOCO-style), on the target train images.

Each step takes ``batch_size`` images, ``source_fraction`` of them labelled source images (their
ground-truth instances of the group, against forgetting) and the rest target crops. For a target
crop the EMA network's embeddings are clustered inside the semantic prediction of the same round
for each class of the group, keeping large, confidently segmented masks
(:func:`~selfpanoptic.pseudo.masks.pseudo_instances`); the student
learns the SPOCO losses on source instances and target pseudo instances together, plus the
rotation-consistency term: the EMA network sees the crop rotated by a random angle, its
embeddings are rotated back and compared with the student's through soft masks around shared
anchors (:func:`~selfpanoptic.losses.consistency.embedding_consistency_loss`). The EMA network
follows the student every step and is checkpointed with it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..classes import class_id
from ..errors import InputError
from ..h5io import open_intermediate, read_strings
from ..losses import spoco_loss
from ..losses.consistency import embedding_consistency_loss, rotate_maps, rotation_affines, sample_anchors
from ..models import load_model_file, model_from_file
from ..pseudo.masks import pseudo_instances
from ..pseudo.sac import momentum_update
from .data import CachedImages, normalise, random_crop_flip, sample_batch
from .engine import finish, pick_device, save_model_file, train
from .instance import group_instance_ids, keep_instances
from .self_semantic import freeze_batchnorm, frozen_copy


def read_semantic_prediction(path: str | Path, cache: CachedImages) -> tuple[np.ndarray, np.ndarray]:
    """``labels`` (N, H, W) uint8 and ``confidence`` (N, H, W) float32 of a semantic prediction
    made on exactly the images of ``cache``."""
    with open_intermediate(path) as h5:
        if list(read_strings(h5, "image_ids")) != list(cache.image_ids):
            raise InputError("semantic prediction does not list the same images as the target cache", path,
                             "rerun predict-semantic of this round on this cache")
        return h5["labels"][()], h5["confidence"][()].astype(np.float32)


def self_train_instance(
    init_model: str | Path, target_cache: str | Path, semantic_prediction: str | Path, source_cache: str | Path | None,
    out: str | Path, work_dir: str | Path, settings: dict[str, Any], loss_settings: dict[str, Any], group: str,
    round_index: int, device: str = "auto", progress: bool = True, desc: str = "self-train instance",
) -> None:
    """One round of instance self-training of group ``group`` from the model file ``init_model``.

    ``settings``: the config's ``selftrain.instance`` section; ``loss_settings``: ``instance.loss``
    (margins shared with pretraining and clustering). ``semantic_prediction``: this round's
    semantic prediction on ``target_cache``.
    """
    train_settings = settings["train"]
    dev = pick_device(device)
    saved = load_model_file(init_model)
    if saved.get("group") != group:
        raise InputError(f"model is of group {saved.get('group')!r}, not {group!r}", init_model)
    classes = [class_id(name) for name in saved["classes"]]
    student = model_from_file(init_model)
    ema = frozen_copy(student).to(dev)
    target = CachedImages(target_cache)
    semantic, confidence = read_semantic_prediction(semantic_prediction, target)
    batch = train_settings["batch_size"]
    n_source = int(round(settings["source_fraction"] * batch)) if source_cache else 0
    n_target = batch - n_source
    source, members, source_indices = None, [], np.zeros(0, dtype=np.int64)
    if n_source:
        source = CachedImages(source_cache)
        group_ids = set(classes)
        members = [group_instance_ids(source.read("labels", i), source.read("instances", i), group_ids) for i in range(len(source))]
        source_indices = np.array([i for i, ids in enumerate(members) if len(ids)], dtype=np.int64)
        if len(source_indices) == 0:
            n_source, n_target = 0, batch
    crop = tuple(train_settings["crop"])
    delta_v, delta_d = loss_settings["delta_v"], loss_settings["delta_d"]
    stats = {"pseudo_instances": 0}

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

    def step(net: nn.Module, rng: np.random.Generator, index: int):
        if index > 0:
            momentum_update(ema, net, settings["ema_momentum"])
        if settings["freeze_bn"]:
            freeze_batchnorm(net)
        images, instances = [], []
        if n_source:
            chosen = rng.choice(source_indices, size=n_source, replace=len(source_indices) < n_source)
            src_images, _, src_instances = sample_batch(
                source, rng, chosen, n_source, crop, train_settings["hflip"], train_settings["jitter"], shuffle=False
            )
            images.append(src_images)
            instances.append(keep_instances(src_instances, [members[i] for i in chosen]))
        tgt_images, tgt_semantic, tgt_confidence = target_batch(rng) if n_target else (None, None, None)
        parts: dict[str, float] = {}
        if n_target:
            tgt_images = tgt_images.to(dev)
            with torch.no_grad():
                ema_embeddings = ema(tgt_images).float()
            pseudo = [
                pseudo_instances(ema_embeddings[b], tgt_semantic[b], tgt_confidence[b], classes, delta_v, delta_d,
                                 settings["min_size"], settings["min_confidence"], device=dev)[0]
                for b in range(n_target)
            ]
            stats["pseudo_instances"] += sum(int(p.max()) for p in pseudo)
            parts["pseudo_per_image"] = float(np.mean([p.max() for p in pseudo]))
            images.append(tgt_images.cpu())
            instances.append(torch.from_numpy(np.stack(pseudo).astype(np.int64)))
        embeddings = net(torch.cat(images).to(dev)).float()
        loss, loss_parts = spoco_loss(
            embeddings, torch.cat(instances).to(dev),
            weights={"dice": loss_settings["dice_weight"]}, delta_v=delta_v, delta_d=delta_d,
            alpha=loss_settings["alpha"], beta=loss_settings["beta"], gamma=loss_settings["gamma"],
        )
        parts.update({"spoco": float(loss.detach()), "dice": float(loss_parts["dice"].detach())})
        if n_target and settings["consistency_weight"] > 0:
            angles = rng.uniform(0.0, settings["max_rotation"], size=n_target)
            height, width = tgt_images.shape[-2:]
            rotated, _ = rotate_maps(tgt_images, rotation_affines(angles, height, width))
            with torch.no_grad():
                back, valid = rotate_maps(ema(rotated).float(), rotation_affines(-angles, height, width))
            things = torch.from_numpy(np.isin(tgt_semantic, classes)).to(dev)
            anchors = sample_anchors(valid & things, settings["consistency_anchors"], rng)
            consistency = embedding_consistency_loss(embeddings[n_source:], back, valid, anchors, delta_v)
            loss = loss + settings["consistency_weight"] * consistency
            parts["consistency"] = float(consistency.detach())
        return loss, parts, len(embeddings)

    identity = {"settings": settings, "loss": loss_settings, "group": group, "round": round_index,
                "init": str(init_model), "data": str(target_cache), "semantic": str(semantic_prediction),
                "source": str(source_cache)}
    result = train(student, step, train_settings, work_dir, identity, dev, desc, progress, extra_state={"ema": ema})
    extra = {key: saved[key] for key in ("group", "classes", "delta_v", "delta_d") if key in saved}
    save_model_file(out, student, "instance", saved["spec"], {
        **extra, "round": round_index, "train_seconds": result.seconds, "images_per_second": result.images_per_second,
    })
    finish(work_dir)
    target.close()
    if source is not None:
        source.close()
    print(f"{desc} [{group}]: {result.steps} steps in {result.seconds:.1f} s ({result.images_per_second:.1f} images/s), "
          f"{stats['pseudo_instances']} pseudo instances -> {out}")
