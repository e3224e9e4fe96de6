"""Validation during training: scores of the model on a small, fixed slice of the target val split.

The engine calls a stage's validator every ``validate_every`` steps (``train.validate_every``;
0 = never) and logs what it returns as ``val/<name>`` (TensorBoard) and in the job's log. A
validator runs the model in eval mode under ``torch.no_grad`` on the first ``validate_images``
images of the val cache, draws no random numbers and puts every module back in the mode it
had (a student with frozen BatchNorm stays frozen), so training takes the very same steps with
validation as without.

- :func:`semantic_validation`: mIoU and mIoU16 (percent) of the argmax prediction, with the
  metric functions of the evaluation stage (:class:`~selfpanoptic.metrics.semantic.SemanticEvaluator`).
- :func:`instance_validation`: the SPOCO loss of the embeddings on the ground-truth instances of
  the model's class group (clustering and AP are left to the evaluation stage).
"""

from __future__ import annotations

import contextlib
from typing import Callable, Iterator

import numpy as np
import torch
from torch import nn

from ..augment.normalise import normalise
from ..inference import batches, predict_semantic_batch
from ..intermediates import DatasetCache
from ..losses import spoco_loss
from ..metrics.semantic import SemanticEvaluator
from ..settings import InstanceLossSettings
from .co_learning import segmenter_of
from .instance import group_instance_ids, keep_instances

Validate = Callable[[nn.Module], dict[str, float]]
"""validate(model being trained) -> {score name: value}."""


@contextlib.contextmanager
def evaluating(model: nn.Module) -> Iterator[None]:
    """Eval mode and no gradients inside; afterwards every module's own train/eval mode again."""
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        for module, training in modes:
            module.training = training


def semantic_validation(cache: DatasetCache, images: int, device: torch.device, batch_size: int = 8) -> Validate:
    """mIoU and mIoU16 (percent) of the semantic model on the first ``images`` images of ``cache``."""
    count = min(images, len(cache))

    def validate(model: nn.Module) -> dict[str, float]:
        evaluator = SemanticEvaluator()
        with evaluating(model):
            for idx in batches(count, batch_size):
                predicted, _ = predict_semantic_batch(segmenter_of(model), np.stack([cache.read("images", i) for i in idx]),
                                                      device)
                for i, labels in zip(idx, predicted):
                    evaluator.add(cache.read("labels", i), labels)
        scores = evaluator.scores()
        return {"mIoU": 100 * scores["mIoU"], "mIoU16": 100 * scores["mIoU16"]}

    return validate


def instance_validation(cache: DatasetCache, class_ids: list[int], loss: InstanceLossSettings, images: int,
                        device: torch.device, batch_size: int = 8) -> Validate | None:
    """The SPOCO ``loss`` (and its Dice part) on the ground-truth instances of the group ``class_ids``
    (trainIds) in the first ``images`` images of ``cache`` that hold one; None when none does."""
    chosen, members = [], []
    for i in range(len(cache)):
        if len(chosen) == images:
            break
        ids = group_instance_ids(cache.read("labels", i), cache.read("instances", i), set(class_ids))
        if len(ids):
            chosen.append(i)
            members.append(ids)
    if not chosen:
        print(f"no image of {cache.path} holds an instance of the classes {class_ids}: no validation", flush=True)
        return None

    def validate(model: nn.Module) -> dict[str, float]:
        totals = {"spoco": 0.0, "dice": 0.0}
        with evaluating(model):
            for idx in batches(len(chosen), batch_size):
                picked = [chosen[k] for k in idx]
                x = normalise(np.stack([cache.read("images", i) for i in picked])).to(device)
                instances = torch.from_numpy(np.stack([cache.read("instances", i) for i in picked]).astype(np.int64))
                instances = keep_instances(instances, [members[k] for k in idx]).to(device)
                total, parts = spoco_loss(model(x).float(), instances, **loss.spoco_arguments())
                totals["spoco"] += float(total) * len(picked)
                totals["dice"] += float(parts["dice"]) * len(picked)
        return {name: value / len(chosen) for name, value in totals.items()}

    return validate
