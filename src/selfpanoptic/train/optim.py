"""The optimiser and the learning-rate schedule of the training engine.

- :func:`build_optimizer`: SGD (momentum), Adam or AdamW over parameter groups that give the
  parameters outside the encoder (``model.head_parameters()``) ``lr * head_lr_mult`` and, with
  ``decay_norms_and_biases: false``, no weight decay to norm layers, biases and position
  embeddings (:func:`parameter_groups`), as the transformer segmentation line trains;
- :func:`learning_rate_factor`: the multiplier of every group's initial rate at a step (poly,
  cosine or constant, after an optional linear warm-up), a pure function of (step, total), so a
  resumed run continues with exactly the rates of an uninterrupted one.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from ..settings import TrainSettings

__all__ = ["NO_DECAY_NAMES", "build_optimizer", "learning_rate_factor", "no_decay_parameter_ids", "parameter_groups"]


NO_DECAY_NAMES = frozenset({"pos_embed", "cls_token", "reg_token"})
"""Parameter names (the last part of a dotted name) that ``decay_norms_and_biases: false`` trains
without weight decay: transformer position embeddings, class and register tokens (timm's names)."""

NORM_TYPES: tuple[type[nn.Module], ...] = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm)
"""Normalisation layers whose parameters ``decay_norms_and_biases: false`` trains without weight
decay (``_NormBase``: BatchNorm, SyncBatchNorm, InstanceNorm)."""


def no_decay_parameter_ids(model: nn.Module) -> set[int]:
    """The parameters that ``decay_norms_and_biases: false`` trains without weight decay.

    Parameters
    ----------
    model:
        The model to train.

    Returns
    -------
    set of int
        ``id()`` of every parameter of a normalisation layer (:data:`NORM_TYPES`), every bias and
        other parameter of at most one dimension (scales, layer-scale vectors), and every parameter
        named in :data:`NO_DECAY_NAMES`.

    Notes
    -----
    Decay pulls a norm's scale or a bias towards 0 without regularising a feature detector;
    transformer recipes (DAFormer, timm) exempt them. The rule goes by module type, shape and
    name, so a model need not list them.
    """
    found: set[int] = set()
    for module in model.modules():
        is_norm = isinstance(module, NORM_TYPES)
        for name, param in module.named_parameters(recurse=False):
            if is_norm or param.ndim <= 1 or name in NO_DECAY_NAMES:
                found.add(id(param))
    return found


def parameter_groups(model: nn.Module, settings: TrainSettings) -> list[dict[str, Any]]:
    """The optimiser's parameter groups: head vs base learning rate, and optionally no-decay groups.

    Parameters
    ----------
    model:
        The model to train. Parameters from its ``head_parameters()`` (where it has one) get
        ``lr * head_lr_mult``, the others ``lr``; frozen parameters are left out.
    settings:
        Its ``lr``, ``head_lr_mult``, ``weight_decay`` and ``decay_norms_and_biases`` are read.

    Returns
    -------
    list of dict
        Each with ``params``, ``lr`` and ``initial_lr`` (the rate the schedule multiplies).
        ``decay_norms_and_biases`` true: the base group, then the head group where the model has a
        head, without a ``weight_decay`` key (the optimiser's, ``settings.weight_decay``, applies).
        False: per learning rate (base, head) a group with ``weight_decay`` and one with 0 holding
        :func:`no_decay_parameter_ids`; empty groups are dropped.
    """
    head = list(model.head_parameters()) if hasattr(model, "head_parameters") else []
    head_ids = {id(p) for p in head}
    base = [p for p in model.parameters() if id(p) not in head_ids and p.requires_grad]
    trained_head = [p for p in head if p.requires_grad]
    lr, head_lr = settings.lr, settings.lr * settings.head_lr_mult
    if settings.decay_norms_and_biases:
        # exactly the groups from before the key existed, so a default run trains the very same numbers
        groups = [{"params": base, "lr": lr, "initial_lr": lr}]
        if head:
            groups.append({"params": trained_head, "lr": head_lr, "initial_lr": head_lr})
        return groups
    exempt = no_decay_parameter_ids(model)
    groups = []
    for params, rate in ((base, lr), (trained_head, head_lr)):
        groups.append({"params": [p for p in params if id(p) not in exempt], "lr": rate, "initial_lr": rate,
                       "weight_decay": settings.weight_decay})
        groups.append({"params": [p for p in params if id(p) in exempt], "lr": rate, "initial_lr": rate,
                       "weight_decay": 0.0})
    return [group for group in groups if group["params"]]


def build_optimizer(model: nn.Module, settings: TrainSettings) -> torch.optim.Optimizer:
    """The optimiser of ``model``'s trainable parameters, grouped by :func:`parameter_groups`.

    Parameters
    ----------
    model:
        The model to train.
    settings:
        ``optimizer``: ``sgd`` (with ``momentum``), ``adam`` (L2 penalty in the gradient) or
        ``adamw`` (decoupled weight decay, Loshchilov & Hutter); ``weight_decay`` applies to every
        group that does not set its own.

    Returns
    -------
    torch.optim.Optimizer
        Its groups carry ``initial_lr``, which :func:`_set_learning_rate` scales each step.
    """
    groups = parameter_groups(model, settings)
    lr = settings.lr
    if settings.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=settings.momentum, weight_decay=settings.weight_decay)
    # adam_betas: only the translator's section has it (GANs train with a short momentum)
    betas = settings.adam_betas if settings.adam_betas is not None else (0.9, 0.999)
    if settings.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=lr, betas=betas, weight_decay=settings.weight_decay)
    return torch.optim.Adam(groups, lr=lr, betas=betas, weight_decay=settings.weight_decay)


def learning_rate_factor(schedule: str, step: int, total: int, power: float = 0.9, warmup_steps: int = 0,
                         warmup_ratio: float = 1e-6) -> float:
    """Multiplier of the initial learning rate at ``step`` of ``total``, with an optional linear warm-up.

    A pure function of its arguments: the engine recomputes the rate from ``(step, total)`` every
    step, so a resumed run follows the uninterrupted one exactly.

    Parameters
    ----------
    schedule:
        ``constant`` (1), ``poly`` (``(1 - step / total) ** power``) or ``cosine``
        (``(1 + cos(pi * step / total)) / 2``).
    step, total:
        The step (from 0) and the number of steps of the run.
    power:
        The poly exponent.
    warmup_steps:
        Steps of linear warm-up (0 = none).
    warmup_ratio:
        The warm-up's factor at step 0.

    Returns
    -------
    float
        ``regular = schedule(step / total)``; for ``step < warmup_steps``
        ``regular * (1 - (1 - step / warmup_steps) * (1 - warmup_ratio))``, else ``regular``.

    Notes
    -----
    This is mmcv's ``LrUpdaterHook`` with ``warmup='linear'`` (DAFormer's ``poly10warm``): the
    schedule runs over the whole run, ``step / total``, not from the end of the warm-up, and the
    warm-up multiplies it. The factor is continuous at ``warmup_steps``; with power 1,
    ``warmup_steps`` 1500 of 40000 it reaches 1 - 1500 / 40000 = 0.9625 there, not 1.
    """
    progress = min(step / max(total, 1), 1.0)
    if schedule == "poly":
        factor = (1.0 - progress) ** power
    elif schedule == "cosine":
        factor = 0.5 * (1.0 + math.cos(math.pi * progress))
    else:
        factor = 1.0
    if step < warmup_steps:
        # mmcv: k = (1 - cur_iter / warmup_iters) * (1 - warmup_ratio); lr = regular_lr * (1 - k)
        factor *= 1.0 - (1.0 - step / warmup_steps) * (1.0 - warmup_ratio)
    return factor
