"""The training step of SemanticGAN's encoder: images -> W+ styles, the generator frozen.

Each step encodes two batches and redraws them with the generator (zero noise, as the readout
does): unlabelled images (``D_r``'s pool) with the reconstruction loss, and labelled pairs
(``D_m``'s pool) with the reconstruction loss plus cross-entropy of the label logits / 0.1 and
Dice of softmax(logits / 0.3) against the pair's labels (the reference's temperatures). The
reconstruction loss is ``reconstruction`` * pyramid L1 + ``mse`` * MSE (LPIPS's stand-in).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..inversion import zero_noise
from ..losses.adversarial import pyramid_l1_loss
from ..losses.gan_regularisation import soft_dice_loss
from ..models.stylegan import SemanticGenerator
from ..gan_settings import GanEncoderSettings
from .engine import TrainingStep
from .semantic_gan import GanData
from .visuals import label_images

__all__ = ["gan_encoder_step"]


def gan_encoder_step(data: GanData, generator: SemanticGenerator, settings: GanEncoderSettings,
                     device: torch.device) -> TrainingStep:
    """The :class:`~selfpanoptic.train.engine.TrainingStep` of the encoder (the engine's model).

    ``generator``: trained, frozen here (the EMA generator of the generator file)."""
    train = settings.train
    generator.requires_grad_(False).eval()
    size, batch = generator.size, train.batch_size

    def prepare(rng: np.random.Generator, index: int):
        return data.sample(rng, batch, size, train.hflip)

    def reconstruction(encoder, images):
        redrawn, logits = generator.synthesis(encoder(images), zero_noise(generator, images.shape[0], device))
        loss = settings.reconstruction * pyramid_l1_loss(redrawn, images) + settings.mse * F.mse_loss(redrawn, images)
        return loss, redrawn, logits

    def compute(encoder, prepared, rng: np.random.Generator, index: int):
        images, pair_images, labels = (t.to(device, non_blocking=True) for t in prepared)
        unlabelled, redrawn, _ = reconstruction(encoder, images)
        labelled, _, logits = reconstruction(encoder, pair_images)
        cross_entropy = F.cross_entropy(logits / 0.1, labels, ignore_index=255) if (labels != 255).any() \
            else logits.sum() * 0
        dice = soft_dice_loss(torch.softmax(logits / 0.3, dim=1), labels)
        loss = unlabelled + labelled + settings.cross_entropy * cross_entropy + settings.dice * dice
        parts = {"reconstruction": unlabelled.detach(), "labelled_reconstruction": labelled.detach(),
                 "cross_entropy": cross_entropy.detach(), "dice": dice.detach()}

        def visualise():
            return {"image": (images + 1) / 2, "reconstruction": (redrawn.detach() + 1) / 2,
                    "readout": label_images(logits.detach().argmax(1)), "labels": label_images(labels)}

        return loss, parts, batch, visualise

    return TrainingStep(prepare, compute, caches=data.caches)
