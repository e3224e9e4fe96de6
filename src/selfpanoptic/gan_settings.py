"""Typed settings of SemanticGAN (the ``semantic_gan`` section), as :mod:`selfpanoptic.settings`
has them for the other sections: frozen dataclasses built from the validated section."""

from __future__ import annotations

from dataclasses import dataclass

from .settings import Section, TrainSettings, _names

__all__ = ["GanEncoderSettings", "InversionSettings", "SemanticGanSettings"]


@dataclass(frozen=True)
class SemanticGanSettings:
    """Training SemanticGAN's generator and discriminators (the ``semantic_gan`` section).

    ``train``: ``semantic_gan.train`` (steps, batch, Adam lr and betas of all three networks);
    ``discriminator``: the image+label discriminator's ``channels``, ``layers``, ``scales``; the
    rest are ``loss.*``: weights of the label branch's hinge term and feature matching, R1's gamma
    and interval, the path-length weight and interval, the style-mixing probability, the EMA decay.
    """

    train: TrainSettings
    label_channels: int
    label_layers: int
    label_scales: int
    label_adversarial: float
    feature_matching: float
    r1_gamma: float
    r1_every: int
    path_length: float
    path_length_every: int
    style_mixing: float
    ema: float

    @classmethod
    def from_config(cls, section: Section) -> SemanticGanSettings:
        loss, disc = section["loss"], section["discriminator"]
        return cls(TrainSettings.from_config(section["train"], "semantic_gan.train"), disc["channels"], disc["layers"],
                   disc["scales"], **{name: loss[name] for name in _names(cls)[4:]})


@dataclass(frozen=True)
class GanEncoderSettings:
    """Training SemanticGAN's encoder (``semantic_gan.encoder``): its ``train`` section and the loss
    weights of the reconstruction (pyramid L1, MSE) and of the labelled step (cross-entropy, Dice)."""

    train: TrainSettings
    reconstruction: float
    mse: float
    cross_entropy: float
    dice: float

    @classmethod
    def from_config(cls, section: Section) -> GanEncoderSettings:
        encoder = section["encoder"]
        return cls(TrainSettings.from_config(encoder["train"], "semantic_gan.encoder.train"),
                   **{name: encoder[name] for name in _names(cls)[1:]})


@dataclass(frozen=True)
class InversionSettings:
    """Test-time inversion (``semantic_gan.inversion``): Adam ``steps`` at peak ``lr`` on W+ and the
    noise maps; loss weights ``mse``, ``noise_regularisation``, ``latent`` beside the pyramid L1;
    ``batch_size`` images at a time."""

    steps: int
    lr: float
    mse: float
    noise_regularisation: float
    latent: float
    batch_size: int

    @classmethod
    def from_config(cls, section: Section) -> InversionSettings:
        return cls(**{name: section["inversion"][name] for name in _names(cls)})
