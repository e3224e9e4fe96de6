"""Generative co-learning: an auxiliary generation task on the semantic model's encoder.

A :class:`~selfpanoptic.models.generation.GenerationHead` decodes the DeepLab encoder's features
into the clean colour image (``target: rgb``, from a greyscale, photometrically degraded input, so
any image can teach it, the unlabelled target ones included) or into inverse depth
(``target: depth``, from the normal input, where the dataset ships depth or disparity). Both tasks
train the encoder; the step's loss becomes ``(1 - beta) * segmentation + beta * generation``.

:class:`CoLearner` is what the training engine optimises (segmenter + head, one optimiser, one
checkpoint); only its ``segmenter`` is saved as the model file, so the head is dropped at
inference. :class:`CoLearning` holds the task: the inputs and targets, the loss (L1, L2 or GAN
with a patch discriminator that it trains itself, one update per step), the beta schedule, and
the audit figure of generated images.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..atomic import atomic_output
from ..augment.normalise import normalise_unit
from ..augment.photometric import photometric_noise
from ..distributed import average_gradients
from ..errors import InputError
from ..intermediates import DatasetCache
from ..losses.generation import (
    co_learning_beta, discriminator_loss, generator_adversarial_loss, reconstruction_loss,
)
from ..models.generation import GenerationHead, PatchDiscriminator
from ..pngio import write_png
from ..settings import CoLearningSettings

OUT_CHANNELS = {"rgb": 3, "depth": 1}


class CoLearner(nn.Module):
    """A segmenter (DeepLab) with a generation head on its encoder.

    forward(x) -> the segmenter's logits, so a training step uses it as the plain model;
    :meth:`generate` runs the encoder and the head. Head parameters (everything outside the
    encoder) get the optimiser's ``head_lr_mult``, as the segmenter's own head does.
    """

    def __init__(self, segmenter: nn.Module, generator: GenerationHead):
        super().__init__()
        self.segmenter = segmenter
        self.generator = generator

    def head_parameters(self) -> list[nn.Parameter]:
        encoder = {id(p) for p in self.segmenter.encoder.parameters()}
        return [p for p in self.parameters() if id(p) not in encoder]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.segmenter(x)

    def generate(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) normalised input -> (B, out_channels, H, W) in [0, 1]."""
        return self.generator(self.segmenter.encoder(x), x.shape[-2:])


def segmenter_of(net: nn.Module) -> nn.Module:
    """The segmentation model inside ``net`` (``net`` itself without co-learning)."""
    return net.segmenter if isinstance(net, CoLearner) else net


def depth_target(inverse_depth: torch.Tensor, near_m: float) -> torch.Tensor:
    """The generation target of ``target: depth``: ``min(1, near_m * inverse_depth)``, NaN kept.

    ``inverse_depth``: (B, H, W) in 1/m, NaN = unknown. Returns (B, 1, H, W) in [0, 1] (1 at
    ``near_m`` metres or nearer, 0 at infinity).
    """
    return (inverse_depth * near_m).clamp(max=1.0).unsqueeze(1)


class CoLearning:
    """The generation task of one training stage.

    ``settings``: the task (``target`` rgb | depth, ``loss`` l1 | l2 | gan, the head, the beta
    schedule, the rgb input's noise, the GAN, the audit figure's ``samples``); ``total_steps``:
    the stage's steps (for the schedule).
    """

    def __init__(self, settings: CoLearningSettings, total_steps: int, device: torch.device):
        self.settings = settings
        self.total_steps = total_steps
        self.device = device
        self.out_channels = OUT_CHANNELS[settings.target]
        self.discriminator = self.d_optimizer = None
        if settings.loss == "gan":
            self.discriminator = PatchDiscriminator(3 + self.out_channels, settings.gan_channels).to(device)
            self.d_optimizer = torch.optim.Adam(self.discriminator.parameters(), lr=settings.gan_lr,
                                                betas=(0.5, 0.999))

    def wrap(self, segmenter: nn.Module) -> CoLearner:
        """The segmenter with a new generation head on its encoder."""
        head = GenerationHead(segmenter.encoder.channels, self.out_channels, self.settings.channels,
                              self.settings.skips)
        return CoLearner(segmenter, head)

    def check_depth(self, *caches: DatasetCache | None) -> None:
        """Refuse ``target: depth`` when none of the caches holds inverse depth."""
        given = [c for c in caches if c is not None]
        if self.settings.target == "depth" and not any(c.has_depth for c in given):
            raise InputError(
                "co_learning.target is depth, but no training cache holds depth (no Depth/ files in Synthia, "
                "no disparity/ files in Cityscapes)", given[0].path if given else None,
                "add the datasets' depth or disparity files and rebuild the caches, or set co_learning.target: rgb",
            )

    # the per-step loss --------------------------------------------------------------------

    def beta(self, step: int) -> float:
        return co_learning_beta(self.settings.schedule, self.settings.beta, step, self.total_steps)

    def inputs_and_targets(self, images: torch.Tensor, inverse_depth: torch.Tensor | None,
                           rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """The generator's input and target for (B, 3, H, W) images in [0, 1].

        rgb: the input is the image in greyscale with brightness/contrast noise, the target the
        image. depth: the input is the image, the target :func:`depth_target` (NaN where
        ``inverse_depth`` is NaN or None).
        """
        if self.settings.target == "rgb":
            degraded = photometric_noise(images, rng, self.settings.noise_brightness, self.settings.noise_contrast,
                                         0.0, grey_p=1.0, blur_p=0.0)
            return degraded, images
        if inverse_depth is None:
            inverse_depth = torch.full((images.shape[0], *images.shape[-2:]), float("nan"))
        return images, depth_target(inverse_depth.to(images.device).float(), self.settings.depth_near_m)

    def loss(self, net: CoLearner, images: torch.Tensor, inverse_depth: torch.Tensor | None,
             rng: np.random.Generator) -> tuple[torch.Tensor, dict[str, float]]:
        """The generation loss of a batch (and, with ``loss: gan``, one discriminator update).

        ``images``: (B, 3, H, W) float in [0, 1] on the device; ``inverse_depth``: (B, H, W) 1/m
        with NaN, or None. Returns the loss and its parts for the training log.
        """
        inputs, target = self.inputs_and_targets(images, inverse_depth, rng)
        generated = net.generate(normalise_unit(inputs)).float()
        reconstruction = reconstruction_loss(generated, target, "l1" if self.settings.loss == "gan" else
                                             self.settings.loss)
        parts = {"generation": float(reconstruction.detach())}
        if self.discriminator is None:
            return reconstruction, parts
        known = torch.isfinite(target)
        real = torch.where(known, target, 0.0)
        fake = torch.where(known, generated, 0.0)  # unknown pixels look alike, so they tell nothing
        with torch.autocast(self.device.type, enabled=False):
            d_loss = discriminator_loss(self.discriminator(inputs.float(), real),
                                        self.discriminator(inputs.float(), fake.detach()))
            self.d_optimizer.zero_grad(set_to_none=True)
            d_loss.backward()
            average_gradients(self.discriminator.parameters())  # data-parallel: one discriminator on every rank
            self.d_optimizer.step()
            adversarial = generator_adversarial_loss(self.discriminator(inputs.float(), fake))
        parts.update(discriminator=float(d_loss.detach()), adversarial=float(adversarial.detach()))
        return adversarial + self.settings.gan_l1_weight * reconstruction, parts

    def combine(self, segmentation: torch.Tensor, generation: torch.Tensor, step: int) -> tuple[torch.Tensor, float]:
        """``(1 - beta) * segmentation + beta * generation`` at ``step``, and beta."""
        beta = self.beta(step)
        return (1.0 - beta) * segmentation + beta * generation, beta

    # checkpointing (the engine's extra_state) -------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        if self.discriminator is None:
            return {}
        return {"discriminator": self.discriminator.state_dict(), "optimizer": self.d_optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.discriminator is not None:
            self.discriminator.load_state_dict(state["discriminator"])
            self.d_optimizer.load_state_dict(state["optimizer"])

    # the audit figure -------------------------------------------------------------------------

    @torch.no_grad()
    def write_samples(self, net: CoLearner, cache: DatasetCache, path: str | Path, seed: int) -> None:
        """A PNG, one row per image: generator input | generated | real target.

        The first ``samples`` images of ``cache``, whole; depth is shown as grey (white = near),
        unknown depth in magenta.
        """
        count = min(self.settings.samples, len(cache))
        images = torch.from_numpy(np.stack([cache.read("images", i) for i in range(count)])).permute(0, 3, 1, 2)
        images = (images.float() / 255.0).to(self.device)
        depth = torch.from_numpy(np.stack([cache.read_inverse_depth(i) for i in range(count)]))
        was_training = net.training
        net.eval()
        inputs, target = self.inputs_and_targets(images, depth, np.random.default_rng(seed))
        generated = net.generate(normalise_unit(inputs)).float()
        net.train(was_training)
        rows = [np.concatenate([_to_rgb(inputs[i]), _to_rgb(generated[i]), _to_rgb(target[i])], axis=1)
                for i in range(count)]
        with atomic_output(Path(path)) as tmp:
            write_png(tmp, np.concatenate(rows, axis=0))


def _to_rgb(image: torch.Tensor) -> np.ndarray:
    """(C, H, W) in [0, 1] (C = 1 or 3, NaN = unknown) -> (H, W, 3) uint8."""
    x = image.detach().float().cpu()
    unknown = ~torch.isfinite(x).all(dim=0)
    x = torch.nan_to_num(x, nan=0.0).clamp(0, 1).expand(3, -1, -1)
    out = (x.permute(1, 2, 0).numpy() * 255.0 + 0.5).astype(np.uint8)
    out[unknown.numpy()] = (255, 0, 255)
    return out


def co_learning_samples_path(model_path: str | Path) -> Path:
    """Where a training stage with co-learning writes its audit figure: beside the model file."""
    return Path(model_path).with_name("co_learning.png")
