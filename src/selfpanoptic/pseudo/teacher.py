"""The teacher networks of self-training: a frozen copy of the student that follows it slowly.

:func:`frozen_copy` makes the teacher (SAC's momentum network, SPOCO's EMA network),
:func:`momentum_update` moves it towards the student, and :func:`freeze_batchnorm` keeps the
student's BatchNorm statistics fixed. Shared by semantic and instance self-training.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

__all__ = ["freeze_batchnorm", "frozen_copy", "momentum_update"]


@torch.no_grad()
def momentum_update(teacher: torch.nn.Module, student: torch.nn.Module, momentum: float = 0.99) -> None:
    """Move ``teacher`` towards ``student`` in place: ``teacher = m * teacher + (1 - m) * student``.

    Applies to every parameter (weights, biases) and every floating-point buffer (BatchNorm
    running mean and variance). Integer buffers (``num_batches_tracked``) are copied from the
    student. Both modules must have the same architecture (same parameter and buffer names and
    shapes); a mismatch raises ``ValueError``. ``momentum=0`` copies the student, ``1`` keeps the
    teacher. The caller decides how often to call it (SAC: every ``momentum_every`` iterations).
    """
    if not 0.0 <= momentum <= 1.0:
        raise ValueError(f"momentum must lie in [0, 1], got {momentum}")
    pairs = [
        (dict(teacher.named_parameters()), dict(student.named_parameters()), "parameter"),
        (dict(teacher.named_buffers()), dict(student.named_buffers()), "buffer"),
    ]
    moving, towards = [], []
    for t_items, s_items, kind in pairs:
        if t_items.keys() != s_items.keys():
            missing = sorted(set(t_items) ^ set(s_items))
            raise ValueError(f"teacher and student differ in {kind}s: {missing[:5]}")
        for name, t in t_items.items():
            s = s_items[name]
            if t.shape != s.shape:
                raise ValueError(f"{kind} {name}: teacher shape {tuple(t.shape)} != student {tuple(s.shape)}")
            if t.is_floating_point() or t.is_complex():
                moving.append(t)
                towards.append(s.detach().to(t.dtype))
            else:
                t.copy_(s)
    # one fused kernel per operation for all tensors instead of two launches per tensor (a
    # ResNet has hundreds); the same arithmetic as t.mul_(m).add_(s, alpha=1 - m)
    with torch.no_grad():
        torch._foreach_mul_(moving, momentum)
        torch._foreach_add_(moving, towards, alpha=1.0 - momentum)


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
