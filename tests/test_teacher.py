"""Teacher networks (:mod:`selfpanoptic.pseudo.teacher`): momentum update, frozen copies, frozen BatchNorm."""

from __future__ import annotations

import pytest
import torch

from selfpanoptic.pseudo.teacher import freeze_batchnorm, frozen_copy, momentum_update


def small_net() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Conv2d(1, 2, 1), torch.nn.BatchNorm2d(2))


def test_momentum_update_parameters_and_batchnorm_buffers():
    torch.manual_seed(0)
    teacher, student = small_net(), small_net()
    with torch.no_grad():  # BN affine starts at (1, 0) in both nets otherwise
        student[1].weight.uniform_(2.0, 3.0)
        student[1].bias.uniform_(1.0, 2.0)
    student(torch.randn(4, 1, 3, 3))  # moves the student's running stats, num_batches_tracked = 1
    student(torch.randn(4, 1, 3, 3))  # num_batches_tracked = 2
    before_t = {k: v.clone() for k, v in teacher.state_dict().items()}
    s = student.state_dict()
    momentum_update(teacher, student, momentum=0.9)
    after = teacher.state_dict()
    for name in ("0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean", "1.running_var"):
        expected = 0.9 * before_t[name] + 0.1 * s[name]
        assert torch.allclose(after[name], expected), name
        assert not torch.allclose(after[name], before_t[name]), name  # it really moved
    assert after["1.num_batches_tracked"].item() == 2  # integer buffer copied
    assert after["1.running_mean"].abs().sum() > 0


def test_momentum_update_is_not_tracked_by_autograd_and_checks_architecture():
    teacher, student = small_net(), small_net()
    momentum_update(teacher, student)
    assert all(p.grad_fn is None for p in teacher.parameters())
    with pytest.raises(ValueError):
        momentum_update(teacher, torch.nn.Conv2d(1, 2, 1))


def test_frozen_copy_is_an_independent_eval_copy_without_gradients():
    student = small_net().train()
    teacher = frozen_copy(student)
    assert not teacher.training and student.training
    assert all(not p.requires_grad for p in teacher.parameters())
    assert all(p.requires_grad for p in student.parameters())
    for (name, t), s in zip(teacher.state_dict().items(), student.state_dict().values()):
        assert torch.equal(t, s), name
    with torch.no_grad():
        student[0].weight.add_(1.0)
    assert not torch.equal(teacher[0].weight, student[0].weight)


def test_freeze_batchnorm_keeps_running_statistics_and_the_rest_in_train_mode():
    net = small_net().train()
    freeze_batchnorm(net)
    assert net.training and net[0].training and not net[1].training
    before = {k: v.clone() for k, v in net[1].state_dict().items()}
    net(torch.randn(4, 1, 3, 3))
    for name, value in net[1].state_dict().items():
        assert torch.equal(value, before[name]), name
