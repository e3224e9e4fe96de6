"""Layers that see the whole batch in a data-parallel job: batch norm and channel dropout.

Batch norm: on CUDA :class:`torch.nn.SyncBatchNorm`. It refuses CPU tensors, so CPU ranks (gloo:
tests, debugging) use :class:`GlobalBatchNorm2d`, which computes the same statistics with two
differentiable all-reduces per layer. Either way N ranks normalise with the mean and variance of
the whole batch, as one process does, and keep identical running statistics.

Dropout: every rank seeds torch's generator from ``(seed, step)``, so a plain dropout layer would
drop the same channels of image 0 on every rank. :class:`GlobalDropout2d` draws the mask of the
global batch and keeps this rank's rows: the very mask one process draws.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn

from ..distributed import is_distributed, rank, world_size


def global_statistics(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-channel mean and biased variance ``(C,)`` float64 of ``x`` ``(B, C, H, W)`` over every
    rank's slice, and the global count of values per channel (a float64 scalar tensor). Two
    passes in float64: one all-reduce of the sums and count, one of the squared deviations."""
    wide = x.detach().double()
    channels = x.shape[1]
    sums = torch.cat([wide.sum(dim=(0, 2, 3)), wide.new_tensor([wide.numel() // channels])])
    dist.all_reduce(sums)
    count = sums[-1]
    mean = sums[:-1] / count
    variance = (wide - mean.view(1, -1, 1, 1)).square().sum(dim=(0, 2, 3))
    dist.all_reduce(variance)
    return mean, variance / count, count


class _GlobalBatchNorm(torch.autograd.Function):
    """Batch normalisation of ``(B, C, H, W)`` with given global statistics; its backward takes
    the means of ``dy`` and ``dy * x_hat`` over every rank (one all-reduce), as
    :class:`torch.nn.SyncBatchNorm` does. Weight and bias get this rank's share of their
    gradients (the ranks' gradients are averaged afterwards)."""

    @staticmethod
    def forward(ctx, x, weight, bias, mean, invstd, count):
        x_hat = (x.detach().double() - mean.view(1, -1, 1, 1)) * invstd.view(1, -1, 1, 1)
        out = x_hat if weight is None else x_hat * weight.double().view(1, -1, 1, 1) + bias.double().view(1, -1, 1, 1)
        ctx.save_for_backward(x_hat, invstd, weight, count)
        return out.to(x.dtype)

    @staticmethod
    def backward(ctx, grad_out):
        x_hat, invstd, weight, count = ctx.saved_tensors
        dy = grad_out.double()
        local = torch.cat([dy.sum(dim=(0, 2, 3)), (dy * x_hat).sum(dim=(0, 2, 3))])
        grad_bias, grad_weight = local.chunk(2)
        total = local.clone()
        dist.all_reduce(total)
        mean_dy, mean_dy_x_hat = (total / count).chunk(2)
        scale = invstd if weight is None else invstd * weight.double()
        grad_x = (dy - mean_dy.view(1, -1, 1, 1) - x_hat * mean_dy_x_hat.view(1, -1, 1, 1)) * scale.view(1, -1, 1, 1)
        if weight is None:
            return grad_x.to(grad_out.dtype), None, None, None, None, None
        return grad_x.to(grad_out.dtype), grad_weight.to(weight.dtype), grad_bias.to(weight.dtype), None, None, None


class GlobalBatchNorm2d(nn.BatchNorm2d):
    """:class:`torch.nn.BatchNorm2d` whose training statistics span every rank's slice of the batch.

    Input ``(B, C, H, W)``. In eval mode, with running statistics only, or in one process it is
    plain BatchNorm. Otherwise the per-channel mean and (biased) variance are those of the global
    batch (:class:`_GlobalBatchNorm`), and the running variance gets the unbiased estimate.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and is_distributed()):
            return super().forward(x)
        self._check_input_dim(x)
        mean, variance, count = global_statistics(x)
        if self.track_running_stats:
            self._update_running_stats(mean.to(x.dtype), variance.to(x.dtype), count.to(x.dtype))
        return _GlobalBatchNorm.apply(x, self.weight, self.bias, mean, torch.rsqrt(variance + self.eps), count)

    @torch.no_grad()
    def _update_running_stats(self, mean: torch.Tensor, variance: torch.Tensor, count: torch.Tensor) -> None:
        """What BatchNorm does in training: step the counter, move the running mean and unbiased variance."""
        self.num_batches_tracked.add_(1)
        factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        unbiased = variance * (count / (count - 1).clamp_min(1))
        self.running_mean.mul_(1 - factor).add_(mean, alpha=factor)
        self.running_var.mul_(1 - factor).add_(unbiased, alpha=factor)


class GlobalDropout2d(nn.Dropout2d):
    """:class:`torch.nn.Dropout2d` whose mask is drawn for the global batch ``(N * B, C, 1, 1)``,
    as :func:`torch.nn.functional.dropout2d` draws it in one process, and sliced to this rank's
    ``(B, C, 1, 1)``. Input ``(B, C, H, W)``; plain dropout in eval mode or in one process."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and self.p > 0 and is_distributed()):
            return super().forward(x)
        batch = len(x)
        noise = x.new_empty((batch * world_size(), x.shape[1], 1, 1))
        if self.p < 1:
            noise.bernoulli_(1 - self.p).div_(1 - self.p)
        else:
            noise.zero_()
        return x * noise[rank() * batch:(rank() + 1) * batch]


def convert_for_data_parallel(model: nn.Module, device: torch.device) -> nn.Module:
    """Make the batch norm and channel dropout of ``model`` span the global batch; returns the model.

    Batch norm on CUDA: :meth:`torch.nn.SyncBatchNorm.convert_sync_batchnorm` (the same
    parameters and buffers in new modules). Otherwise each :class:`torch.nn.BatchNorm2d` becomes a
    :class:`GlobalBatchNorm2d` and each :class:`torch.nn.Dropout2d` a :class:`GlobalDropout2d` in
    place (they add no state, so parameters, buffers and state-dict keys stay those of the model,
    and optimisers or teachers built over them still hold the same tensors). In one process the
    model is returned unchanged.
    """
    if not is_distributed():
        return model
    for module in model.modules():
        if type(module) is nn.Dropout2d:
            module.__class__ = GlobalDropout2d
        elif type(module) is nn.BatchNorm2d and device.type != "cuda":
            module.__class__ = GlobalBatchNorm2d
    return nn.SyncBatchNorm.convert_sync_batchnorm(model) if device.type == "cuda" else model
