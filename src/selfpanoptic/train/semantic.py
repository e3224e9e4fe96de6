"""The training step of source pretraining (and the target oracle) of the semantic model.

Cross-entropy on labelled random crops of a dataset cache; with generative co-learning
(:mod:`selfpanoptic.train.co_learning`), plus the generation loss on the same crops and on
unlabelled target crops.
"""

from __future__ import annotations

import numpy as np
import torch

from ..augment.normalise import denormalise
from ..intermediates import DatasetCache
from ..losses.cross_entropy import labelled_cross_entropy
from ..settings import TrainSettings
from .co_learning import CoLearning
from .data import Batch, SampledPairs, TranslatedImages, sample_batch
from .engine import TrainingStep
from .visuals import label_images, normalised_images


def semantic_step(cache: DatasetCache, settings: TrainSettings, device: torch.device,
                  co_learning: CoLearning | None = None, target: DatasetCache | None = None,
                  target_batch_size: int = 0, translated: TranslatedImages | None = None,
                  sampled: SampledPairs | None = None) -> TrainingStep:
    """The :class:`~selfpanoptic.train.engine.TrainingStep` of supervised DeepLab training.

    ``settings``: semantic training (``batch_size``, ``crop``, ``hflip``, ``jitter``).
    Each step draws ``batch_size`` random crops of ``cache`` and returns their cross-entropy.
    With ``co_learning`` (the model is then its :class:`~selfpanoptic.train.co_learning.CoLearner`)
    the generation loss of those crops and of ``target_batch_size`` crops of ``target`` (unlabelled
    target images; their labels are never read) is mixed in with the schedule's beta.
    ``translated``: source images rendered in the target's look, drawn instead of the originals
    with its share; ``sampled``: labelled pairs of another dataset (a generator's samples), drawn
    in place of a source pair with its share (both: :func:`~selfpanoptic.train.data.sample_batch`).
    """
    indices = np.arange(len(cache))
    depth = co_learning is not None and co_learning.out_channels == 1
    extra_target = co_learning is not None and target is not None and target_batch_size > 0

    def prepare(rng: np.random.Generator, index: int) -> tuple[Batch, Batch | None]:
        batch = sample_batch(cache, rng, indices, settings.batch_size, settings.crop, settings.hflip, settings.jitter,
                             depth=depth, translated=translated, sampled=sampled)
        extra = None
        if extra_target:
            extra = sample_batch(target, rng, np.arange(len(target)), target_batch_size, settings.crop,
                                 settings.hflip, depth=depth)
        return batch, extra

    def compute(net: torch.nn.Module, prepared: tuple[Batch, Batch | None], rng: np.random.Generator, index: int):
        batch, extra = prepared
        logits = net(batch.images.to(device, non_blocking=True))
        loss = labelled_cross_entropy(logits.float(), batch.labels.to(device, non_blocking=True))
        parts = {"ce": loss.detach()}
        images = len(batch.images)

        def visualise():
            return {"input": normalised_images(batch.images), "prediction": label_images(logits.argmax(1)),
                    "label": label_images(batch.labels)}

        if co_learning is None:
            return loss, parts, images, visualise
        generate, inverse_depth = [denormalise(batch.images)], [batch.inverse_depth]
        if extra is not None:
            generate.append(denormalise(extra.images))
            inverse_depth.append(extra.inverse_depth)
            images += len(extra.images)
        generation, gen_parts = co_learning.loss(
            net, torch.cat(generate).to(device), torch.cat(inverse_depth) if depth else None, rng)
        loss, beta = co_learning.combine(loss, generation, index)
        return loss, {**parts, **gen_parts, "beta": beta}, images, visualise

    return TrainingStep(prepare, compute, caches=(cache,) + ((target,) if extra_target else ())
                        + ((translated.cache,) if translated is not None else ())
                        + ((sampled.cache,) if sampled is not None else ()))
