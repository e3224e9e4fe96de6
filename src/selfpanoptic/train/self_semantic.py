"""Semantic self-training of one round (SAC-style), on the target train images.

Each step:

1. ``batch_size`` target images are cropped (and flipped) at random; each becomes ``views``
   views (the crop itself + zoom-in crops, :func:`~selfpanoptic.pseudo.sac.random_view_affines`).
2. The momentum teacher predicts every clean view; the predictions are fused in the crop's frame
   and thresholded per class (:func:`~selfpanoptic.pseudo.sac.pseudo_labels_in_reference`),
   optionally refined with instance masks (:func:`~selfpanoptic.pseudo.sac.refine_with_instances`)
   and cut out for every view again (:func:`~selfpanoptic.pseudo.sac.labels_to_views`).
3. The student sees the views with photometric noise and is trained with the focal,
   confidence-weighted cross-entropy, plus cross-entropy on a labelled source batch.
4. The class prior follows the teacher's softmax; every ``momentum_every`` steps the teacher
   moves towards the student.

Teacher and prior are checkpointed with the student, so a killed job resumes exactly.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..classes import IGNORE, NUM_CLASSES
from ..models import load_model_file, model_from_file
from ..pseudo.sac import (
    focal_confidence_ce,
    initial_prior,
    labels_to_views,
    make_views,
    momentum_update,
    photometric_noise,
    pseudo_labels_in_reference,
    random_view_affines,
    refine_with_instances,
    update_prior,
)
from ..pseudo_labels import guidance_instances, read_prior
from .data import CachedImages, normalise_unit, random_crop_flip, sample_batch, to_unit
from .engine import finish, pick_device, save_model_file, train


class ClassPrior:
    """The moving class prior ``(C,)`` as a checkpointable object."""

    def __init__(self, value: torch.Tensor):
        self.value = value.float().clone()

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"value": self.value.clone()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.value = state["value"].float().clone()


def freeze_batchnorm(model: nn.Module) -> None:
    """Put every BatchNorm layer of ``model`` in eval mode: running statistics stay fixed."""
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.eval()


def frozen_copy(model: nn.Module) -> nn.Module:
    """A copy of ``model`` in eval mode without gradients (a teacher / EMA network)."""
    teacher = copy.deepcopy(model).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher


def self_train_semantic(
    init_model: str | Path, target_cache: str | Path, source_cache: str | Path | None, out: str | Path,
    work_dir: str | Path, settings: dict[str, Any], round_index: int,
    pseudo_labels: str | Path | None = None, guidance_path: str | Path | None = None,
    device: str = "auto", progress: bool = True, desc: str = "self-train semantic",
) -> None:
    """One round of semantic self-training from the model file ``init_model``; writes ``out``.

    ``settings``: the config's ``selftrain`` section without ``rounds`` (``semantic``, ``guidance``).
    ``pseudo_labels``: the round's pseudo-label file; its class prior seeds the moving prior
    (without it, the prior starts at SAC's 1e-3). ``guidance_path``: round r-1's instance
    predictions on the target train images, used from ``guidance.from_round`` on.
    """
    sem = settings["semantic"]
    train_settings = sem["train"]
    dev = pick_device(device)
    spec = load_model_file(init_model)["spec"]
    student = model_from_file(init_model)
    teacher = frozen_copy(student).to(dev)
    prior = ClassPrior(read_prior(pseudo_labels) if pseudo_labels else initial_prior(NUM_CLASSES))

    target = CachedImages(target_cache)
    guide = guidance_instances(settings["guidance"], round_index, target, guidance_path, train_settings["seed"])
    source = CachedImages(source_cache) if source_cache and sem["source_batch_size"] > 0 else None
    target_indices = np.arange(len(target))
    crop = tuple(train_settings["crop"])
    noise = sem["noise"]

    def sample_target(rng: np.random.Generator) -> tuple[torch.Tensor, np.ndarray | None]:
        chosen = rng.choice(target_indices, size=train_settings["batch_size"], replace=len(target_indices) < train_settings["batch_size"])
        images, guides = [], []
        for i in chosen:
            arrays = [target.read("images", i)] + ([guide[i]] if guide is not None else [])
            cropped = random_crop_flip(rng, arrays, crop, train_settings["hflip"])
            images.append(cropped[0])
            if guide is not None:
                guides.append(cropped[1])
        return to_unit(np.stack(images)), (np.stack(guides) if guide is not None else None)

    def step(net: nn.Module, rng: np.random.Generator, index: int):
        if index > 0 and index % sem["momentum_every"] == 0:
            momentum_update(teacher, net, sem["momentum"])
        if sem["freeze_bn"]:
            freeze_batchnorm(net)
        images, guides = sample_target(rng)
        affines = random_view_affines(len(images), sem["views"], rng, sem["min_scale"], sem["max_scale"], sem["flip_p"])
        views = make_views(images.to(dev), affines)
        with torch.no_grad():
            teacher_probs = torch.softmax(teacher(normalise_unit(views)).float(), dim=1)
        labels, confidence = pseudo_labels_in_reference(
            teacher_probs, affines, prior.value, sem["threshold_ratio"], sem["prior_temperature"], sem["threshold_floor"]
        )
        if guides is not None:
            labels = torch.stack([refine_with_instances(labels[b], guides[b]) for b in range(len(labels))])
        view_labels, view_confidence = labels_to_views(labels, confidence, affines)
        noisy = photometric_noise(
            views, rng, noise["brightness"], noise["contrast"], noise["saturation"], noise["grey_p"],
            noise["blur_p"], tuple(noise["blur_sigma"]),
        )
        logits = net(normalise_unit(noisy)).float()
        target_loss = focal_confidence_ce(logits, view_labels, view_confidence, prior.value.to(dev), sem["focal_power"])
        prior.value = update_prior(prior.value, teacher_probs.cpu(), sem["prior_momentum"])
        loss = sem["lambda_target"] * target_loss
        parts = {"target": float(target_loss.detach()), "kept": float((view_labels != IGNORE).float().mean())}
        batch_images = len(views)
        if source is not None:
            src_images, src_labels, _ = sample_batch(
                source, rng, np.arange(len(source)), sem["source_batch_size"], crop, train_settings["hflip"], train_settings["jitter"]
            )
            source_loss = F.cross_entropy(net(src_images.to(dev)).float(), src_labels.to(dev), ignore_index=IGNORE)
            loss = loss + sem["source_weight"] * source_loss
            parts["source"] = float(source_loss.detach())
            batch_images += len(src_images)
        return loss, parts, batch_images

    identity = {"settings": settings, "round": round_index, "init": str(init_model), "data": str(target_cache),
                "source": str(source_cache), "guidance": str(guidance_path), "pseudo_labels": str(pseudo_labels)}
    result = train(student, step, train_settings, work_dir, identity, dev, desc, progress,
                   extra_state={"teacher": teacher, "prior": prior})
    save_model_file(out, student, "semantic", spec, {
        "round": round_index, "prior": prior.value, "train_seconds": result.seconds,
        "images_per_second": result.images_per_second,
    })
    finish(work_dir)
    target.close()
    if source is not None:
        source.close()
    print(f"{desc}: {result.steps} steps in {result.seconds:.1f} s ({result.images_per_second:.1f} images/s) -> {out}")
