"""The training step of SemanticGAN's generator, and the state beside it (discriminators, EMA).

The engine optimises the generator; :class:`GanCritics` holds the rest and is checkpointed
through the engine's ``extra_state``: the image discriminator ``D_r`` (StyleGAN2's residual one)
and the image+label discriminator ``D_m`` (the multi-scale patch discriminator), their Adam, the
generator's moving average and the running mean of the path lengths.

Each step (one generated batch serves both players, as in the translator's step):

1. The moving average takes the weights the previous step left.
2. Codes ``z`` (two, with the style-mixing probability) give images and label logits.
3. ``D_r``: logistic loss on real images vs. generated ones; ``D_m``: hinge loss on real pairs
   vs. generated pairs. Every ``r1_every`` steps both add ``r1_gamma / 2 * r1_every`` times R1.
4. The generator's loss: the non-saturating ``D_r`` term, plus ``label_adversarial`` times the
   hinge ``D_m`` term and ``feature_matching`` times ``D_m``'s feature matching against the real
   pairs, both with the image detached (only the label branch answers ``D_m``), plus every
   ``path_length_every`` steps the path-length penalty times ``path_length * path_length_every``.

Images are in [-1, 1]; label maps enter ``D_m`` as ``2 * probabilities - 1`` (generated: the
softmax; real: one-hot, and 0 on void pixels, which carry no class).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..augment.normalise import to_unit
from ..intermediates import DatasetCache
from ..losses.adversarial import feature_matching_loss, hinge_discriminator_loss, hinge_generator_loss
from ..losses.gan_regularisation import logistic_discriminator_loss, path_length_penalty, r1_penalty
from ..losses.generation import generator_adversarial_loss
from ..models.spade import MultiscaleDiscriminator
from ..models.stylegan import SemanticGenerator
from ..models.stylegan_discriminator import ResidualDiscriminator
from ..gan_settings import SemanticGanSettings
from .data import sample_crops
from .engine import TrainingStep
from .visuals import label_images

__all__ = ["GanCritics", "GanData", "label_planes", "semantic_gan_step", "signed_images"]


@dataclass
class GanData:
    """What the GAN learns from: ``images`` (a cache) and the indices of its images ``D_r`` sees;
    ``pairs`` (a cache), the indices of its labelled images and ``read_labels(i)`` -> (H, W) uint8
    trainIds (255 = void) of image i, which ``D_m`` sees."""

    images: DatasetCache
    image_indices: np.ndarray
    pairs: DatasetCache
    pair_indices: np.ndarray
    read_labels: Callable[[int], np.ndarray]

    def sample(self, rng: np.random.Generator, batch: int, size: tuple[int, int], hflip: bool
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """A batch of images and one of pairs, whole (``size``: the caches' (H, W)), each flipped
        with probability 0.5 when ``hflip``: images (B, 3, H, W) and pair images in [-1, 1], pair
        labels (B, H, W) int64."""
        _, (images,) = sample_crops(rng, self.image_indices, batch, lambda i: [self.images.read("images", i)],
                                    size, hflip)
        _, (pair_images, labels) = sample_crops(
            rng, self.pair_indices, batch, lambda i: [self.pairs.read("images", i), self.read_labels(i)], size, hflip)
        return signed_images(images), signed_images(pair_images), torch.from_numpy(labels.astype(np.int64))

    @property
    def caches(self) -> tuple[DatasetCache, ...]:
        """The caches it reads, each once (for the engine's worker processes)."""
        return tuple({id(c): c for c in (self.images, self.pairs)}.values())


def signed_images(images: np.ndarray) -> torch.Tensor:
    """uint8 (B, H, W, 3) -> float32 (B, 3, H, W) in [-1, 1] (the generator's range)."""
    return to_unit(images) * 2 - 1


def label_planes(labels: torch.Tensor, num_classes: int, ignore: int = 255) -> torch.Tensor:
    """(B, H, W) int64 trainIds -> (B, num_classes, H, W) float: +1 for the pixel's class, -1 for
    the others, 0 in every channel of a void pixel (``ignore`` or out of range)."""
    valid = (labels >= 0) & (labels < num_classes) & (labels != ignore)
    one_hot = F.one_hot(torch.where(valid, labels, 0), num_classes).permute(0, 3, 1, 2).float()
    return (2 * one_hot - 1) * valid.unsqueeze(1)


class GanCritics:
    """Both discriminators, their Adam, the generator's EMA copy and the path-length mean.

    ``generator``: the one being trained (copied once for the EMA); ``settings``: its section.
    """

    def __init__(self, generator: SemanticGenerator, settings: SemanticGanSettings, device: torch.device):
        spec, train = settings, settings.train
        self.image = ResidualDiscriminator(generator.size, generator.levels, _finest(generator),
                                           _widest(generator)).to(device)
        self.pair = MultiscaleDiscriminator(generator.num_classes + 3, spec.label_channels, spec.label_layers,
                                            spec.label_scales, spectral=True).to(device)
        params = list(self.image.parameters()) + list(self.pair.parameters())
        self.optimizer = torch.optim.Adam(params, lr=train.lr, betas=train.adam_betas)
        self.ema = copy.deepcopy(generator).eval().requires_grad_(False)
        self.path_mean = torch.zeros((), device=device)
        self.settings = settings

    @torch.no_grad()
    def update_ema(self, generator: nn.Module) -> None:
        """Move the moving average towards ``generator``'s weights by ``1 - ema``."""
        for average, current in zip(self.ema.parameters(), generator.parameters()):
            average.lerp_(current.detach(), 1 - self.settings.ema)

    def update(self, real: torch.Tensor, fake: torch.Tensor, pair_images: torch.Tensor, pair_labels: torch.Tensor,
               fake_labels: torch.Tensor, index: int) -> dict[str, torch.Tensor]:
        """One step of both discriminators (``fake``, ``fake_labels`` detached here); returns their losses."""
        s = self.settings
        image_loss = logistic_discriminator_loss(self.image(real), self.image(fake.detach()))
        pair_loss = hinge_discriminator_loss(self.pair(pair_labels, pair_images),
                                             self.pair(fake_labels.detach(), fake.detach()))
        loss = image_loss + pair_loss
        if s.r1_gamma > 0 and index % s.r1_every == 0:
            real = real.detach().requires_grad_(True)
            pair_images, pair_labels = (t.detach().requires_grad_(True) for t in (pair_images, pair_labels))
            r1 = r1_penalty(self.image(real), [real])
            # per image, the logit the hinge loss sees: the patches' mean, averaged over scales (a
            # sum over patches would scale the penalty with the number of patches squared)
            scales = self.pair(pair_labels, pair_images)
            per_image = torch.stack([scale[-1].mean(dim=(1, 2, 3)) for scale in scales]).mean(0)
            r1 = r1 + r1_penalty(per_image, [pair_labels, pair_images])
            loss = loss + s.r1_gamma / 2 * s.r1_every * r1
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return {"d_image": image_loss.detach(), "d_pair": pair_loss.detach()}

    def state_dict(self) -> dict[str, Any]:
        return {"image": self.image.state_dict(), "pair": self.pair.state_dict(), "ema": self.ema.state_dict(),
                "optimizer": self.optimizer.state_dict(), "path_mean": self.path_mean}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.image.load_state_dict(state["image"])
        self.pair.load_state_dict(state["pair"])
        self.ema.load_state_dict(state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.path_mean = state["path_mean"].to(self.path_mean.device)


def _finest(generator: SemanticGenerator) -> int:
    return generator.to_rgb[-1].conv.weight.shape[2]


def _widest(generator: SemanticGenerator) -> int:
    return generator.constant.shape[1]


def semantic_gan_step(data: GanData, generator: SemanticGenerator, critics: GanCritics, settings: SemanticGanSettings,
                      device: torch.device) -> TrainingStep:
    """The :class:`~selfpanoptic.train.engine.TrainingStep` of SemanticGAN's generator.

    Whole images at the caches' working size (``train.crop`` is not used), flipped with
    ``train.hflip``. The codes and the style-mixing draws come from the step's generator, so a
    resumed run draws the same ones.
    """
    train = settings.train
    size = generator.size
    batch = train.batch_size

    def prepare(rng: np.random.Generator, index: int):
        real, pair_images, pair_labels = data.sample(rng, batch, size, train.hflip)
        codes = rng.standard_normal((2, batch, generator.style_dim)).astype(np.float32)
        cut = int(rng.integers(1, generator.num_styles)) if rng.random() < settings.style_mixing else 0
        return real, pair_images, pair_labels, torch.from_numpy(codes), cut

    def compute(model: SemanticGenerator, prepared, rng: np.random.Generator, index: int):
        real, pair_images, labels, codes, cut = prepared
        real, pair_images, labels, codes = (t.to(device, non_blocking=True) for t in (real, pair_images, labels, codes))
        critics.update_ema(model)
        with torch.autocast(device.type, enabled=False):  # R1 and path length differentiate twice
            fake, logits, wplus = model(codes[0], codes[1] if cut else None, cut or None)
            fake_labels = 2 * torch.softmax(logits, dim=1) - 1
            pair_labels = label_planes(labels, model.num_classes)
            parts = critics.update(real, fake, pair_images, pair_labels, fake_labels, index)
            adversarial = generator_adversarial_loss(critics.image(fake))
            with torch.no_grad():
                real_features = critics.pair(pair_labels, pair_images)
            fake_features = critics.pair(fake_labels, fake.detach())
            label_term = hinge_generator_loss(fake_features)
            matching = feature_matching_loss(real_features, fake_features)
            loss = adversarial + settings.label_adversarial * label_term + settings.feature_matching * matching
            if settings.path_length > 0 and index % settings.path_length_every == 0:
                penalty, _, critics.path_mean = path_length_penalty(fake, wplus, critics.path_mean)
                loss = loss + settings.path_length * settings.path_length_every * penalty
                parts["path_length"] = penalty.detach()
        parts.update(adversarial=adversarial.detach(), label_adversarial=label_term.detach(),
                     feature_matching=matching.detach())

        def visualise():
            return {"generated": (fake.detach() + 1) / 2, "generated_labels": label_images(logits.detach().argmax(1)),
                    "real": (real + 1) / 2}

        return loss, parts, batch, visualise

    return TrainingStep(prepare, compute, caches=data.caches)
