"""The training step of the label-to-image translator (SPADE) and its discriminator.

The engine optimises the generator; :class:`Discriminator` is the rest of the GAN's state (the
multi-scale patch discriminator and its Adam), updated once per step inside the generator's
step and checkpointed through the engine's ``extra_state``, as co-learning's discriminator is.

Each step: random crops of target train images and of the label maps that describe them (a
round's predictions or pseudo-labels); one discriminator update on real vs. generated images
(hinge loss), then the generator's loss ``adversarial * hinge + feature_matching * FM +
reconstruction * pyramid L1``. Both networks see the label map as one-hot channels plus a void
channel (:func:`~selfpanoptic.models.spade.label_one_hot`).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from ..augment.normalise import to_unit
from ..classes import NUM_CLASSES
from ..distributed import average_gradients
from ..models import LABEL_CHANNELS
from ..intermediates import DatasetCache
from ..losses.adversarial import (
    feature_matching_loss, hinge_discriminator_loss, hinge_generator_loss, pyramid_l1_loss,
)
from ..models.spade import MultiscaleDiscriminator, label_one_hot
from ..settings import TranslationSettings
from .data import sample_crops
from .engine import TrainingStep
from .visuals import label_images

class Discriminator:
    """The multi-scale patch discriminator of the translator and its optimiser.

    ``settings``: its ``discriminator``, ``spectral_norm`` and ``train.adam_betas`` (shared with the
    generator). Conditional: it sees the label map's channels and the image.
    """

    def __init__(self, settings: TranslationSettings, device: torch.device):
        spec = settings.discriminator
        self.net = MultiscaleDiscriminator(LABEL_CHANNELS + 3, spec.channels, spec.layers, spec.scales,
                                           settings.spectral_norm).to(device)
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=spec.lr, betas=settings.train.adam_betas)

    def update(self, segmap: torch.Tensor, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        """One hinge-loss step on real vs. ``fake`` (detached here); returns the loss before the step."""
        loss = hinge_discriminator_loss(self.net(segmap, real), self.net(segmap, fake.detach()))
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        average_gradients(self.net.parameters())  # data-parallel: one discriminator on every rank
        self.optimizer.step()
        return loss.detach()

    def state_dict(self) -> dict[str, Any]:
        return {"net": self.net.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.net.load_state_dict(state["net"])
        self.optimizer.load_state_dict(state["optimizer"])


def translator_step(images: DatasetCache, read_labels: Callable[[int], np.ndarray], settings: TranslationSettings,
                    discriminator: Discriminator, device: torch.device) -> TrainingStep:
    """The :class:`~selfpanoptic.train.engine.TrainingStep` of translator training.

    ``images``: the target train cache (its labels are not read); ``read_labels(i)``: image i's
    label map, (H, W) uint8 trainIds with 255 = void. The step's loss is the generator's; the
    discriminator is updated inside the step.
    """
    train = settings.train
    indices = np.arange(len(images))

    def prepare(rng: np.random.Generator, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Random crops: images ``(B, 3, h, w)`` float32 in [0, 1] and their labels ``(B, h, w)`` int64."""
        _, (real, labels) = sample_crops(rng, indices, train.batch_size,
                                         lambda i: [images.read("images", i), read_labels(i)], train.crop, train.hflip)
        return to_unit(real), torch.from_numpy(labels.astype(np.int64))

    def compute(generator: nn.Module, prepared, rng: np.random.Generator, index: int):
        real, labels = (t.to(device, non_blocking=True) for t in prepared)
        segmap = label_one_hot(labels, NUM_CLASSES)
        fake = generator(segmap).float()
        # the discriminator's step runs in full precision, outside the generator's autocast
        with torch.autocast(device.type, enabled=False):
            d_loss = discriminator.update(segmap, real, fake)
            with torch.no_grad():
                real_features = discriminator.net(segmap, real)
            fake_features = discriminator.net(segmap, fake)
            adversarial = hinge_generator_loss(fake_features)
            matching = feature_matching_loss(real_features, fake_features)
            reconstruction = pyramid_l1_loss(fake, real, settings.pyramid_levels)
        loss = (settings.adversarial * adversarial + settings.feature_matching * matching
                + settings.reconstruction * reconstruction)
        parts = {"adversarial": adversarial.detach(), "feature_matching": matching.detach(),
                 "reconstruction": reconstruction.detach(), "discriminator": d_loss}

        def visualise():
            return {"label": label_images(labels), "translated": fake.detach().clamp(0, 1), "real": real}

        return loss, parts, len(real), visualise

    return TrainingStep(prepare, compute, caches=(images,))
