"""The training step of one round of semantic self-training (SAC-style), on the target train images.

Each step:

1. ``batch_size`` target images are cropped (and flipped) at random; each becomes ``views``
   views (the crop itself + zoom-in crops, :func:`~selfpanoptic.augment.views.random_view_affines`).
2. The momentum teacher's pseudo-labels of the crops are made by
   :func:`~selfpanoptic.pseudo.semantic.make_pseudo_labels` (views fused in the crop's frame,
   class-adaptive thresholds, optional instance guidance) and cut out for every view
   (:func:`~selfpanoptic.augment.views.labels_to_views`).
3. The student sees the views with photometric noise and is trained with the focal,
   confidence-weighted cross-entropy, plus cross-entropy on a labelled source batch. With
   self-correction (``self_correction.enabled``) each kept pixel is trained towards the soft
   target ``q = softmax((l_student + alpha * l_ancillary) / (1 + alpha))`` instead of its hard
   pseudo-label (:mod:`selfpanoptic.losses.self_correction`); the thresholds still choose the
   pixels and the focal and confidence weights still weigh them. With co-learning
   (``co_learning.enabled``) the generation loss of the target crops and the source batch is mixed
   in (:mod:`selfpanoptic.train.co_learning`).
4. The class prior follows the teacher's softmax; every ``momentum_every`` steps the teacher
   moves towards the student.

Teacher and prior are checkpointed with the student (the engine's ``extra_state``), so a killed
job resumes exactly.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..augment.crops import random_crop_flip
from ..augment.photometric import apply_photometric_noise, draw_photometric_noise
from ..augment.views import labels_to_views, random_view_affines
from ..classes import IGNORE
from ..intermediates import DatasetCache
from ..losses.focal import focal_confidence_ce
from ..pseudo.semantic import make_pseudo_labels
from ..pseudo.teacher import freeze_batchnorm, momentum_update
from ..pseudo.thresholds import ClassPrior, update_prior
from ..augment.normalise import denormalise, normalise_unit, to_unit
from ..losses.self_correction import annealed_alpha, self_corrected_targets
from .co_learning import CoLearning, segmenter_of
from .data import sample_batch
from .engine import TrainingStep
from .visuals import label_images, unit_images


def self_semantic_step(
    teacher: nn.Module, prior: ClassPrior, target: DatasetCache, guide: np.ndarray | None,
    source: DatasetCache | None, settings: dict[str, Any], device: torch.device,
    co_learning: CoLearning | None = None, previous: nn.Module | None = None,
    rules: dict[str, Any] | None = None, reference: torch.Tensor | None = None,
    target_probabilities: np.ndarray | None = None,
) -> TrainingStep:
    """The :class:`~selfpanoptic.train.engine.TrainingStep` of SAC self-training.

    ``teacher``: the momentum teacher (moved in place); ``prior``: the moving class prior (updated
    in place); ``target``: the target train cache (images only); ``guide``: (N, H, W) instance maps
    guiding the pseudo-labels, or None; ``source``: labelled cache for the joint source loss, or
    None; ``settings``: the ``selftrain.semantic`` section; ``co_learning``: the generation task
    (the model is then its :class:`~selfpanoptic.train.co_learning.CoLearner`) or None;
    ``previous``: the frozen previous-round model, the ancillary model of self-correction when
    ``self_correction.ancillary`` is ``previous_round``; ``rules``: the ``selftrain.guidance``
    section, which says which instances of ``guide`` may relabel which pixels; ``reference``:
    ``(C,)`` source class shares, needed when ``alignment`` > 0; ``target_probabilities``:
    ``(N,)`` chance of drawing each target image (rare-class sampling, drawn with replacement),
    or None for uniform draws.
    """
    train_settings = settings["train"]
    target_indices = np.arange(len(target))
    crop = tuple(train_settings["crop"])
    noise = settings["noise"]
    correction = settings["self_correction"]
    depth = co_learning is not None and co_learning.out_channels == 1

    def sample_target(rng: np.random.Generator) -> tuple[torch.Tensor, np.ndarray | None, torch.Tensor | None]:
        if target_probabilities is None:
            chosen = rng.choice(target_indices, size=train_settings["batch_size"],
                                replace=len(target_indices) < train_settings["batch_size"])
        else:
            chosen = rng.choice(target_indices, size=train_settings["batch_size"], p=target_probabilities)
        images, guides, depths = [], [], []
        for i in chosen:
            arrays = [target.read("images", i)] + ([guide[i]] if guide is not None else [])
            if depth:
                arrays.append(target.read_inverse_depth(i))
            cropped = random_crop_flip(rng, arrays, crop, train_settings["hflip"])
            images.append(cropped[0])
            if guide is not None:
                guides.append(cropped[1])
            if depth:
                depths.append(cropped[-1])
        return (to_unit(np.stack(images)), (np.stack(guides) if guide is not None else None),
                torch.from_numpy(np.stack(depths).astype(np.float32)) if depth else None)

    def ancillary_logits(made) -> torch.Tensor:
        """Self-correction's ancillary model on the clean views: the teacher's log-softmax, or the
        previous round's logits."""
        if correction["ancillary"] == "teacher":
            return made.teacher_probs.clamp_min(1e-12).log()
        with torch.no_grad():
            return previous(normalise_unit(made.views)).float()

    def prepare(rng: np.random.Generator, index: int):
        # the draws in the order the step once made them inline: target crops, views, noise, source
        images, guides, target_depth = sample_target(rng)
        affines = random_view_affines(len(images), settings["views"], rng, settings["min_scale"],
                                      settings["max_scale"], settings["flip_p"])
        drawn = draw_photometric_noise(
            len(images) * settings["views"], rng, noise["brightness"], noise["contrast"], noise["saturation"],
            noise["grey_p"], noise["blur_p"], tuple(noise["blur_sigma"]),
        )
        src = None
        if source is not None:
            src = sample_batch(
                source, rng, np.arange(len(source)), settings["source_batch_size"], crop, train_settings["hflip"],
                train_settings["jitter"], depth=depth,
            )
        return images, guides, target_depth, affines, drawn, src

    def compute(net: nn.Module, prepared, rng: np.random.Generator, index: int):
        images, guides, target_depth, affines, drawn, src = prepared
        student = segmenter_of(net)
        if index > 0 and index % settings["momentum_every"] == 0:
            momentum_update(teacher, student, settings["momentum"])
        if settings["freeze_bn"]:
            freeze_batchnorm(student)
        made = make_pseudo_labels(teacher, images.to(device, non_blocking=True), affines, prior.value, settings, guides, rules,
                                  reference)
        view_labels, view_confidence = labels_to_views(made.labels, made.confidence, affines)
        noisy = apply_photometric_noise(made.views, drawn)
        logits = net(normalise_unit(noisy)).float()
        soft_targets = None
        parts = {}
        if correction["enabled"]:
            alpha = annealed_alpha(correction["alpha_start"], correction["alpha_end"], index, train_settings["steps"])
            soft_targets = self_corrected_targets(logits, ancillary_logits(made), alpha)
            parts["alpha"] = alpha
        target_loss = focal_confidence_ce(logits, view_labels, view_confidence, prior.value.to(device),
                                          settings["focal_power"], targets=soft_targets)
        prior.value = update_prior(prior.value, made.teacher_probs, settings["prior_momentum"])  # (C,) back, not the maps
        loss = settings["lambda_target"] * target_loss
        parts.update(target=target_loss.detach(), kept=(view_labels != IGNORE).float().mean())
        batch_images = len(made.views)
        generate, generate_depth = [images], [target_depth]
        if src is not None:
            source_loss = F.cross_entropy(net(src.images.to(device, non_blocking=True)).float(),
                                          src.labels.to(device, non_blocking=True), ignore_index=IGNORE)
            loss = loss + settings["source_weight"] * source_loss
            parts["source"] = source_loss.detach()
            batch_images += len(src.images)
            generate.append(denormalise(src.images))
            generate_depth.append(src.inverse_depth)
        if co_learning is not None:
            generation, gen_parts = co_learning.loss(
                net, torch.cat(generate).to(device), torch.cat(generate_depth) if depth else None, rng)
            loss, beta = co_learning.combine(loss, generation, index)
            parts.update(gen_parts, beta=beta)

        def visualise():
            """The student's (noisy) views, its prediction and the pseudo-labels of the views (ignore: black)."""
            return {"input": unit_images(noisy), "prediction": label_images(logits.argmax(1)),
                    "pseudo_label": label_images(view_labels)}

        return loss, parts, batch_images, visualise

    return TrainingStep(prepare, compute, caches=(target,) + ((source,) if source is not None else ()))
