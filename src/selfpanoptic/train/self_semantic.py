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
   in (:mod:`selfpanoptic.train.co_learning`). With cross-domain mixing (``class_mix``) each view
   first gets half of the classes of a labelled source crop pasted onto it
   (:mod:`selfpanoptic.augment.class_mix`), trained on the source labels at full weight.
4. The class prior follows the teacher's softmax; every ``momentum_every`` steps the teacher
   moves towards the student.

Teacher and prior are checkpointed with the student (the engine's ``extra_state``), so a killed
job resumes exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..augment.class_mix import half_of_ids, paste
from ..augment.normalise import denormalise, normalise_unit, to_unit
from ..augment.photometric import apply_photometric_noise, draw_photometric_noise
from ..augment.views import labels_to_views, random_view_affines
from ..classes import IGNORE
from ..distributed import mean_over_ranks
from ..intermediates import DatasetCache, LazyStack, lazy_stacks
from ..losses.cross_entropy import labelled_cross_entropy
from ..losses.focal import focal_confidence_ce
from ..losses.self_correction import annealed_alpha, self_corrected_targets
from ..pseudo.semantic import PseudoLabels, make_pseudo_labels
from ..pseudo.teacher import freeze_batchnorm, momentum_update
from ..pseudo.thresholds import ClassPrior, update_prior
from ..settings import GuidanceSettings, SelfSemanticSettings
from .co_learning import CoLearning, segmenter_of
from .data import Batch, sample_batch, sample_crops
from .engine import TrainingStep
from .visuals import label_images, unit_images


@dataclass(frozen=True, eq=False)
class SelfSemanticData:
    """The images of a round of semantic self-training and what steers their pseudo-labels.

    ``target``: the target train cache (images only); ``source``: labelled cache of the joint
    source loss and of cross-domain mixing, or None; ``guide``: ``(N, H, W)`` instance maps of the target images that guide
    the pseudo-labels (an array, or read per image: what
    :func:`~selfpanoptic.stages._guidance.load_guidance` gives), or None; ``rules``: which of
    their instances may relabel which pixels (required with ``guide``); ``reference``: ``(C,)``
    float32 source class shares, needed when ``pseudo.alignment`` > 0; ``target_probabilities``:
    ``(N,)`` chance of drawing each target image (rare-class sampling, with replacement), or None
    for uniform draws.
    """

    target: DatasetCache
    source: DatasetCache | None = None
    guide: np.ndarray | LazyStack | None = None
    rules: GuidanceSettings | None = None
    reference: torch.Tensor | None = None
    target_probabilities: np.ndarray | None = None


class ClassMixCrops(NamedTuple):
    """One labelled source crop per view (image-major, as the views): ``images`` ``(B*V, 3, h, w)``
    float32 in [0, 1], ``labels`` ``(B*V, h, w)`` int64 trainIds, ``masks`` ``(B*V, h, w)`` bool:
    the pixels of half of each crop's classes, pasted onto its view."""

    images: torch.Tensor
    labels: torch.Tensor
    masks: torch.Tensor


class SelfSemanticBatch(NamedTuple):
    """What a step's ``prepare`` hands its ``compute`` (host side; pinned by the engine's loader).

    ``images``: ``(B, 3, h, w)`` float32 target crops in [0, 1]; ``guides``: ``(B, h, w)``
    instance maps of the crops, or None; ``inverse_depth``: ``(B, h, w)`` float32 in 1/m (NaN =
    unknown) of the crops with depth co-learning, else None; ``affines``: ``(B, V, 2, 3)`` the
    views' geometry; ``noise``: ``(B * V, 6)`` float64 photometric draws of the student's views;
    ``source``: the labelled source :class:`~selfpanoptic.train.data.Batch`, or None; ``mix``:
    the source crops pasted onto the views (cross-domain mixing), or None.
    """

    images: torch.Tensor
    guides: np.ndarray | None
    inverse_depth: torch.Tensor | None
    affines: torch.Tensor
    noise: np.ndarray
    source: Batch | None
    mix: ClassMixCrops | None = None



def self_semantic_step(
    teacher: nn.Module, prior: ClassPrior, data: SelfSemanticData, settings: SelfSemanticSettings,
    device: torch.device, co_learning: CoLearning | None = None, previous: nn.Module | None = None,
) -> TrainingStep:
    """The :class:`~selfpanoptic.train.engine.TrainingStep` of SAC self-training.

    ``teacher``: the momentum teacher (moved in place); ``prior``: the moving class prior (updated
    in place); ``data``: the target (and source) images and the pseudo-labels' guidance;
    ``co_learning``: the generation task (the model is then its
    :class:`~selfpanoptic.train.co_learning.CoLearner`) or None; ``previous``: the frozen
    previous-round model, the ancillary model of self-correction when
    ``settings.self_correction.ancillary`` is ``previous_round``.
    """
    step = _SelfSemanticStep(teacher, prior, data, settings, device, co_learning, previous)
    source = (data.source,) if data.source is not None else ()
    return TrainingStep(step.prepare, step.compute, caches=(data.target,) + source + lazy_stacks(data.guide))


class _SelfSemanticStep:
    """The two halves of a self-training step; attributes are the round's fixed state."""

    def __init__(self, teacher: nn.Module, prior: ClassPrior, data: SelfSemanticData, settings: SelfSemanticSettings,
                 device: torch.device, co_learning: CoLearning | None, previous: nn.Module | None):
        self.teacher, self.prior, self.data, self.settings = teacher, prior, data, settings
        self.device, self.co_learning, self.previous = device, co_learning, previous
        self.depth = co_learning is not None and co_learning.out_channels == 1
        if settings.class_mix and data.source is None:
            raise ValueError("class_mix pastes labelled source crops: SelfSemanticData needs its source cache")

    # host side ---------------------------------------------------------------------------------

    def prepare(self, rng: np.random.Generator, index: int) -> SelfSemanticBatch:
        """The step's random crops and draws, in the order the step once made them inline:
        target crops, views, noise, source batch; then the mixing crops and their classes."""
        settings, train, noise = self.settings, self.settings.train, self.settings.noise
        images, guides, inverse_depth = self._sample_target(rng)
        views = settings.views
        affines = random_view_affines(len(images), views.views, rng, views.min_scale, views.max_scale, views.flip_p)
        drawn = draw_photometric_noise(len(images) * views.views, rng, noise.brightness, noise.contrast,
                                       noise.saturation, noise.grey_p, noise.blur_p, noise.blur_sigma)
        src = mix = None
        if self.data.source is not None and settings.source_batch_size > 0:
            src = sample_batch(self.data.source, rng, np.arange(len(self.data.source)), settings.source_batch_size,
                               train.crop, train.hflip, train.jitter, depth=self.depth)
        if settings.class_mix:
            mix = self._mixing_crops(rng, len(images) * views.views, tuple(images.shape[-2:]))
        return SelfSemanticBatch(images, guides, inverse_depth, affines, drawn, src, mix)

    def _mixing_crops(self, rng: np.random.Generator, count: int, size: tuple[int, int]) -> ClassMixCrops:
        """``count`` labelled source crops of the views' ``size`` and half of each one's classes."""
        crops = sample_batch(self.data.source, rng, np.arange(len(self.data.source)), count, size,
                             self.settings.train.hflip, self.settings.train.jitter)
        masks = half_of_ids(crops.labels.numpy(), rng)
        return ClassMixCrops(denormalise(crops.images), crops.labels, torch.from_numpy(masks))

    def _sample_target(self, rng: np.random.Generator) -> tuple[torch.Tensor, np.ndarray | None, torch.Tensor | None]:
        """Target crops ``(B, 3, h, w)`` in [0, 1], their guide maps and inverse depth (or None)."""
        target, guide, train = self.data.target, self.data.guide, self.settings.train

        def read(i: int) -> list[np.ndarray]:
            arrays = [target.read("images", i)] + ([guide[i]] if guide is not None else [])
            return arrays + [target.read_inverse_depth(i)] if self.depth else arrays

        _, stacks = sample_crops(rng, np.arange(len(target)), train.batch_size, read, train.crop, train.hflip,
                                 probabilities=self.data.target_probabilities)
        return (to_unit(stacks[0]), stacks[1] if guide is not None else None,
                torch.from_numpy(stacks[-1].astype(np.float32)) if self.depth else None)

    # the model's work -----------------------------------------------------------------------------

    def compute(self, net: nn.Module, batch: SelfSemanticBatch, rng: np.random.Generator, index: int):
        """``(loss, parts, images, visualise)`` of one step (the engine's ``compute``)."""
        self._follow_student(segmenter_of(net), index)
        made = make_pseudo_labels(self.teacher, batch.images.to(self.device, non_blocking=True), batch.affines,
                                  self.prior.value, self.settings.pseudo, batch.guides, self.data.rules,
                                  self.data.reference)
        view_labels, view_confidence = labels_to_views(made.labels, made.confidence, batch.affines)
        views, pasted = made.views, None
        if batch.mix is not None:
            views, view_labels, view_confidence, pasted = self._class_mix(views, view_labels, view_confidence,
                                                                          batch.mix)
        noisy = apply_photometric_noise(views, batch.noise)
        logits = net(normalise_unit(noisy)).float()
        loss, parts = self._target_loss(logits, made, view_labels, view_confidence, index, pasted)
        batch_images = len(made.views)
        if batch.source is not None:
            loss = loss + self._source_loss(net, batch.source, parts)
            batch_images += len(batch.source.images)
        if self.co_learning is not None:
            loss = self._with_generation(net, loss, batch, rng, index, parts)

        def visualise():
            """The student's (noisy) views, its prediction and the pseudo-labels of the views (ignore: black)."""
            return {"input": unit_images(noisy), "prediction": label_images(logits.argmax(1)),
                    "pseudo_label": label_images(view_labels)}

        return loss, parts, batch_images, visualise

    def _follow_student(self, student: nn.Module, index: int) -> None:
        """Every ``momentum_every`` steps the teacher moves towards the student; BatchNorm frozen when asked."""
        if index > 0 and index % self.settings.momentum_every == 0:
            momentum_update(self.teacher, student, self.settings.momentum)
        if self.settings.freeze_bn:
            freeze_batchnorm(student)

    def _class_mix(self, views: torch.Tensor, labels: torch.Tensor, confidence: torch.Tensor, mix: ClassMixCrops):
        """The views with the mixing crops' chosen classes pasted on: ``(views, labels, confidence,
        pasted)``; pasted pixels take the source label at confidence 1."""
        device = views.device
        pasted = mix.masks.to(device, non_blocking=True)
        views = paste(pasted, mix.images.to(device, non_blocking=True).to(views.dtype), views)
        labels = paste(pasted, mix.labels.to(device, non_blocking=True), labels)
        confidence = paste(pasted, torch.ones_like(confidence), confidence)
        return views, labels, confidence, pasted

    def _target_loss(self, logits: torch.Tensor, made: PseudoLabels, view_labels: torch.Tensor,
                     view_confidence: torch.Tensor, index: int,
                     pasted: torch.Tensor | None = None) -> tuple[torch.Tensor, dict]:
        """``lambda_target`` times the focal, confidence-weighted loss of the views (towards the
        self-corrected soft targets when enabled; pasted source pixels towards their true label),
        and its log parts; moves the class prior."""
        settings, correction = self.settings, self.settings.self_correction
        soft_targets = None
        parts = {}
        if correction.enabled:
            alpha = annealed_alpha(correction.alpha_start, correction.alpha_end, index, settings.train.steps)
            soft_targets = self_corrected_targets(logits, self._ancillary_logits(made), alpha)
            if pasted is not None:
                true = F.one_hot(view_labels.clamp(0, logits.shape[1] - 1), logits.shape[1]).permute(0, 3, 1, 2)
                soft_targets = paste(pasted, true.to(soft_targets.dtype), soft_targets)
            parts["alpha"] = alpha
        if pasted is not None:
            parts["pasted"] = pasted.float().mean()
        target_loss = focal_confidence_ce(logits, view_labels, view_confidence, self.prior.value.to(self.device),
                                          settings.focal_power, targets=soft_targets)
        # (C,) comes back to the host, not the maps
        self.prior.value = update_prior(self.prior.value, made.teacher_probs, settings.prior_momentum,
                                        batch_mean=mean_over_ranks)
        parts.update(target=target_loss.detach(), kept=(view_labels != IGNORE).float().mean())
        return settings.lambda_target * target_loss, parts

    def _ancillary_logits(self, made: PseudoLabels) -> torch.Tensor:
        """Self-correction's ancillary model on the clean views: the teacher's log-softmax, or the
        previous round's logits."""
        if self.settings.self_correction.ancillary == "teacher":
            return made.teacher_probs.clamp_min(1e-12).log()
        with torch.no_grad():
            return self.previous(normalise_unit(made.views)).float()

    def _source_loss(self, net: nn.Module, src: Batch, parts: dict) -> torch.Tensor:
        """``source_weight`` times the cross-entropy of the labelled source batch (logged in ``parts``)."""
        source_loss = labelled_cross_entropy(net(src.images.to(self.device, non_blocking=True)).float(),
                                             src.labels.to(self.device, non_blocking=True))
        parts["source"] = source_loss.detach()
        return self.settings.source_weight * source_loss

    def _with_generation(self, net: nn.Module, loss: torch.Tensor, batch: SelfSemanticBatch,
                         rng: np.random.Generator, index: int, parts: dict) -> torch.Tensor:
        """``loss`` mixed with the generation loss of the target crops and the source batch."""
        generate, inverse_depth = [batch.images], [batch.inverse_depth]
        if batch.source is not None:
            generate.append(denormalise(batch.source.images))
            inverse_depth.append(batch.source.inverse_depth)
        generation, gen_parts = self.co_learning.loss(
            net, torch.cat(generate).to(self.device), torch.cat(inverse_depth) if self.depth else None, rng)
        loss, beta = self.co_learning.combine(loss, generation, index)
        parts.update(gen_parts, beta=beta)
        return loss
