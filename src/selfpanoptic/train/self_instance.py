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

With instance-level cross-domain mixing (``class_mix``), each target crop then gets half of the
group's instances of a labelled source crop pasted onto it (:mod:`selfpanoptic.augment.class_mix`):
the pasted instances keep their own (renumbered) ids, the pseudo instances lose the pixels the
paste covers, and the student and the consistency term see the mixed crop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from ..augment.class_mix import half_of_ids, paste
from ..augment.normalise import normalise
from ..augment.views import rotate_maps, rotation_affines
from ..distributed import shard
from ..intermediates import DatasetCache, LazyStack, lazy_stacks
from ..losses import spoco_loss
from ..losses.consistency import embedding_consistency_loss, sample_anchors
from ..pseudo.masks import pseudo_instances_batch
from ..pseudo.objectness import Objectness
from ..pseudo.teacher import freeze_batchnorm, momentum_update
from ..settings import InstanceLossSettings, SelfInstanceSettings
from .data import choose_images, sample_batch, sample_crops
from .engine import TrainingStep
from .instance import group_instance_ids, keep_instances
from .visuals import MAX_IMAGES, embedding_images, instance_images, label_images, normalised_images


@dataclass(frozen=True, eq=False)
class SelfInstanceData:
    """The images of a round of instance self-training.

    ``target``: the target train cache (images only); ``semantic`` ``(N, H, W)`` uint8 trainIds
    and ``confidence`` ``(N, H, W)`` float32 softmax maximum: this round's semantic prediction on
    ``target``, as arrays or as per-image views of the prediction file
    (:class:`~selfpanoptic.intermediates.StackView`, what the stage uses: a step reads only the
    images it draws); ``source``: labelled cache mixed into each batch, or None.
    """

    target: DatasetCache
    semantic: np.ndarray | LazyStack
    confidence: np.ndarray | LazyStack
    source: DatasetCache | None = None


class SourceCrops(NamedTuple):
    """Labelled source crops: ``images`` ``(S, 3, h, w)`` float32 normalised, ``instances``
    ``(S, h, w)`` int64 (0 = none; instances outside the group zeroed)."""

    images: torch.Tensor
    instances: torch.Tensor


class TargetCrops(NamedTuple):
    """Target crops: ``images`` ``(T, 3, h, w)`` float32 normalised, ``semantic`` ``(T, h, w)``
    uint8 and ``confidence`` ``(T, h, w)`` float32 of the round's semantic prediction."""

    images: torch.Tensor
    semantic: np.ndarray
    confidence: np.ndarray


class MixCrops(NamedTuple):
    """Labelled source crops pasted onto the target crops, one each: ``images`` ``(T, 3, h, w)``
    float32 normalised, ``instances`` ``(T, h, w)`` int64 (the group's only), ``masks``
    ``(T, h, w)`` bool: the pixels of half of each crop's instances."""

    images: torch.Tensor
    instances: torch.Tensor
    masks: torch.Tensor


class SelfInstanceBatch(NamedTuple):
    """What a step's ``prepare`` hands its ``compute``: the source and target crops (None when
    the batch has none of them) and the crops mixed into the target crops (or None)."""

    source: SourceCrops | None
    target: TargetCrops | None
    mix: MixCrops | None = None


def self_instance_step(
    ema: nn.Module, classes: list[int], data: SelfInstanceData, settings: SelfInstanceSettings,
    loss: InstanceLossSettings, device: torch.device, stats: dict[str, int], objectness: Objectness | None = None,
) -> TrainingStep:
    """The :class:`~selfpanoptic.train.engine.TrainingStep` of SPOCO self-training of a group.

    ``ema``: the EMA network (moved in place); ``classes``: the group's thing trainIds;
    ``data``: the target images, their semantic prediction and the source; ``loss``: the SPOCO
    loss (``delta_v``, ``delta_d`` also cluster the pseudo instances); ``stats``: counts
    ``pseudo_instances`` made; ``objectness``: the fitted objectness classifier that filters the
    pseudo instances (``settings.objectness.min_score``), or None.
    """
    step = _SelfInstanceStep(ema, classes, data, settings, loss, device, stats, objectness)
    source = (data.source,) if step.n_source else ()
    return TrainingStep(step.prepare, step.compute,
                        caches=(data.target,) + source + lazy_stacks(data.semantic, data.confidence))


class _SelfInstanceStep:
    """The two halves of an instance self-training step; attributes are the round's fixed state."""

    def __init__(self, ema: nn.Module, classes: list[int], data: SelfInstanceData, settings: SelfInstanceSettings,
                 loss: InstanceLossSettings, device: torch.device, stats: dict[str, int],
                 objectness: Objectness | None):
        self.ema, self.classes, self.data, self.settings, self.loss = ema, classes, data, settings, loss
        self.device, self.stats, self.objectness = device, stats, objectness
        batch = settings.train.batch_size
        n_source = int(round(settings.source_fraction * batch)) if data.source is not None else 0
        wanted = data.source is not None and (n_source or settings.class_mix)
        self.members, self.source_indices = _group_members(data.source, classes) if wanted else ([], None)
        self.n_source = n_source if n_source and len(self.source_indices) else 0
        self.n_target = batch - self.n_source
        self.mixing = bool(settings.class_mix and wanted and len(self.source_indices))
        stats.setdefault("pseudo_instances", 0)

    # host side ---------------------------------------------------------------------------------

    def prepare(self, rng: np.random.Generator, index: int) -> SelfInstanceBatch:
        """Source crops with an instance of the group (first), then target crops, then the crops
        mixed into the target crops and their chosen instances."""
        source = None
        if self.n_source:
            source = SourceCrops(*self._group_crops(rng, self.n_source))
        target = self._target_crops(rng) if self.n_target else None
        mix = None
        if self.mixing and target is not None:
            images, instances = self._group_crops(rng, self.n_target, tuple(target.images.shape[-2:]))
            mix = MixCrops(images, instances, torch.from_numpy(half_of_ids(instances.numpy(), rng, exclude=(0,))))
        return SelfInstanceBatch(source, target, mix)

    def _group_crops(self, rng: np.random.Generator, count: int,
                     size: tuple[int, int] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``count`` crops (of ``size``, default the training crop) of source images holding an
        instance of the group: normalised images and their group instances (others zeroed)."""
        train = self.settings.train
        chosen = choose_images(rng, self.source_indices, count)
        images, _, instances, _ = sample_batch(self.data.source, rng, chosen, count, size or train.crop,
                                               train.hflip, train.jitter, shuffle=False)
        return images, keep_instances(instances, [self.members[i] for i in chosen])

    def _target_crops(self, rng: np.random.Generator) -> TargetCrops:
        data, train = self.data, self.settings.train
        _, (images, semantic, confidence) = sample_crops(
            rng, np.arange(len(data.target)), self.n_target,
            lambda i: [data.target.read("images", i), data.semantic[i], data.confidence[i]], train.crop, train.hflip)
        return TargetCrops(normalise(images), semantic, confidence)

    # the model's work -----------------------------------------------------------------------------

    def compute(self, net: nn.Module, batch: SelfInstanceBatch, rng: np.random.Generator, index: int):
        """``(loss, parts, images, visualise)`` of one step (the engine's ``compute``)."""
        settings, device = self.settings, self.device
        if index > 0:
            momentum_update(self.ema, net, settings.ema_momentum)
        if settings.freeze_bn:
            freeze_batchnorm(net)
        images, instances = [], []
        if batch.source is not None:
            images.append(batch.source.images.to(device, non_blocking=True))
            instances.append(batch.source.instances.to(device, non_blocking=True))
        parts: dict[str, float] = {}
        target_images = things = None
        if batch.target is not None:
            target_images = batch.target.images.to(device, non_blocking=True)
            pseudo = self._pseudo_instances(target_images, batch.target, parts)
            things = torch.from_numpy(np.isin(batch.target.semantic, self.classes)).to(device)
            if batch.mix is not None:
                target_images, pseudo, things = _mix_instances(target_images, pseudo, things, batch.mix, parts)
            images.append(target_images)
            instances.append(pseudo)
        # this process's share of the source crops (all of them in one process; a slice in a data-parallel job)
        n_source = len(images[0]) if batch.source is not None else 0
        images, instances = torch.cat(images), torch.cat(instances)
        embeddings = net(images).float()
        loss, loss_parts = spoco_loss(embeddings, instances, **self.loss.spoco_arguments())
        parts.update({"spoco": loss.detach(), "dice": loss_parts["dice"].detach()})
        if batch.target is not None and settings.consistency_weight > 0:
            consistency = self._consistency(embeddings[n_source:], target_images, things, rng)
            loss = loss + settings.consistency_weight * consistency
            parts["consistency"] = consistency.detach()

        def visualise():
            """Target crops first (their instances are pseudo instances, inside the round's semantic
            prediction), then source crops (ground-truth instances)."""
            shown = [*range(n_source, len(images)), *range(n_source)][:MAX_IMAGES]
            pictures = {"input": normalised_images(images[shown]), "embedding": embedding_images(embeddings[shown]),
                        "instances": instance_images(instances[shown])}
            if batch.target is not None:
                pictures["semantic"] = label_images(torch.from_numpy(batch.target.semantic))
            return pictures

        return loss, parts, len(embeddings), visualise

    def _pseudo_instances(self, images: torch.Tensor, target: TargetCrops, parts: dict) -> torch.Tensor:
        """``(T, h, w)`` int64 pseudo instances of the target crops on the device, from the EMA
        network's embeddings; counted in ``stats`` and logged in ``parts``."""
        settings = self.settings
        with torch.no_grad():
            ema_embeddings = self.ema(images).float()
        # every image and class of the batch clustered in one call (no per-image host round trips)
        pseudo = [instances for instances, _ in pseudo_instances_batch(
            ema_embeddings, target.semantic, target.confidence, self.classes, self.loss.delta_v, self.loss.delta_d,
            settings.min_size, settings.min_confidence, device=self.device, objectness=self.objectness,
            min_objectness=settings.objectness.min_score)]
        self.stats["pseudo_instances"] += sum(int(p.max()) for p in pseudo)
        parts["pseudo_per_image"] = float(np.mean([p.max() for p in pseudo]))
        return torch.from_numpy(np.stack(pseudo).astype(np.int64)).to(self.device, non_blocking=True)

    def _consistency(self, embeddings: torch.Tensor, images: torch.Tensor, things: torch.Tensor,
                     rng: np.random.Generator) -> torch.Tensor:
        """The rotation-consistency term of the target crops: the EMA network sees each crop
        rotated by a random angle (degrees), its embeddings are rotated back and compared with
        the student's ``embeddings`` ``(T, D, h, w)`` around anchors on the group's pixels
        ``things`` ``(T, h, w)`` bool."""
        settings = self.settings
        # the angles of the whole batch's target crops, as one process draws them; this rank's share
        angles = shard(rng.uniform(0.0, settings.max_rotation, size=self.n_target))
        height, width = images.shape[-2:]
        rotated, _ = rotate_maps(images, rotation_affines(angles, height, width))
        with torch.no_grad():
            back, valid = rotate_maps(self.ema(rotated).float(), rotation_affines(-angles, height, width))
        anchors = sample_anchors(valid & things, settings.consistency_anchors, rng)
        return embedding_consistency_loss(embeddings, back, valid, anchors, self.loss.delta_v)


def _mix_instances(images: torch.Tensor, pseudo: torch.Tensor, things: torch.Tensor, mix: MixCrops,
                   parts: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Target crops with the mixing crops' chosen instances pasted on: ``(images, instances,
    things)``. A pasted instance keeps its own id shifted above the crop's largest pseudo id, so
    the two never share one."""
    device = images.device
    masks = mix.masks.to(device, non_blocking=True)
    source_ids = mix.instances.to(device, non_blocking=True)
    shifted = torch.where(source_ids > 0, source_ids + pseudo.flatten(1).amax(1).view(-1, 1, 1), source_ids)
    parts["pasted"] = masks.float().mean()
    return (paste(masks, mix.images.to(device, non_blocking=True).to(images.dtype), images),
            paste(masks, shifted, pseudo), things | masks)


def _group_members(source: DatasetCache, classes: list[int]) -> tuple[list[np.ndarray], np.ndarray]:
    """Per source image the ids of its instances of the group ``classes`` (trainIds), and the
    ``(M,)`` int64 indices of the images holding at least one."""
    group_ids = set(classes)
    members = [group_instance_ids(source.read("labels", i), source.read("instances", i), group_ids)
               for i in range(len(source))]
    return members, np.array([i for i, ids in enumerate(members) if len(ids)], dtype=np.int64)
