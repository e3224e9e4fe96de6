"""Typed settings: the validated config sections the library reads, as frozen dataclasses.

The config schema's key names end here.
Each class is built from its validated section (defaults filled in,
:func:`selfpanoptic.config.section_settings`) by ``from_config``, which the
stage commands call; the library (training steps, pseudo-labels, dense inference) takes these
objects or plain arguments and never a raw config dict.

Values are kept as the config gives them (an integer stays an integer); only lists become
tuples, so that the objects are hashable and the numbers every computation sees are unchanged.
Units and meanings are the schema's (``schemas/config.schema.yaml``); the attributes carry the
key names of the section unless a docstring says otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Mapping

from .errors import InputError

Section = Mapping[str, Any]
"""A validated config section (defaults filled in)."""


def _names(cls) -> list[str]:
    return [f.name for f in fields(cls)]


@dataclass(frozen=True)
class TrainSettings:
    """A ``train`` section (``semantic.train``, ``instance.train``, ``selftrain.*.train``,
    ``translation.train``).

    ``crop``: (height, width) pixels of each random training crop; ``jitter``: colour jitter
    strength (0 = off); ``adam_betas``: only in ``translation.train``, else None. The rest
    (optimiser, weight decay of norms and biases, schedule and warm-up, checkpoints, mixed
    precision, logging, validation) is what the training engine reads.
    """

    steps: int
    batch_size: int
    crop: tuple[int, int]
    hflip: bool
    jitter: float
    optimizer: str
    lr: float
    head_lr_mult: float
    momentum: float
    weight_decay: float
    decay_norms_and_biases: bool
    schedule: str
    poly_power: float
    warmup_steps: int
    warmup_ratio: float
    checkpoint_every: int
    seed: int
    amp: bool
    amp_dtype: str
    channels_last: bool
    compile: bool
    tensorboard: bool
    log_images_every: int
    validate_every: int
    validate_images: int
    adam_betas: tuple[float, float] | None = None

    @classmethod
    def from_config(cls, section: Section, where: str = "train") -> TrainSettings:
        """The settings of a validated ``train`` section.

        Parameters
        ----------
        section:
            The section, defaults filled in.
        where:
            Its key path in the config (``semantic.train``), for the error message.

        Raises
        ------
        InputError
            ``warmup_steps`` is above ``steps`` (a relation the schema cannot state).
        """
        if section["warmup_steps"] > section["steps"]:
            raise InputError(
                f"invalid config: {where}.warmup_steps {section['warmup_steps']} is above {where}.steps "
                f"{section['steps']}: the learning rate would never reach its full value",
                fix=f"lower {where}.warmup_steps to at most {where}.steps (0 = no warm-up)",
            )
        names = [f.name for f in fields(cls) if f.name not in ("crop", "adam_betas")]
        betas = section.get("adam_betas")  # translation.train only
        return cls(crop=tuple(section["crop"]), adam_betas=tuple(betas) if betas is not None else None,
                   **{name: section[name] for name in names})


@dataclass(frozen=True)
class InferenceSettings:
    """How a model runs on an image batch (the ``inference`` section; :func:`selfpanoptic.dense.dense_predict`).

    ``mode``: ``"whole"`` or ``"slide"``; ``crop``, ``stride``: (height, width) pixels of the
    sliding windows (slide mode only); ``scales``: image sizes relative to the input's;
    ``flip``: also run on the mirrored image. The defaults are one whole pass at scale 1 without
    flip (what ``dense_predict`` does without settings), not the schema's defaults.
    """

    mode: str = "whole"
    crop: tuple[int, int] | None = None
    stride: tuple[int, int] | None = None
    scales: tuple[float, ...] = (1.0,)
    flip: bool = False

    @classmethod
    def from_config(cls, section: Section) -> InferenceSettings:
        return cls(section["mode"], tuple(section["crop"]), tuple(section["stride"]), tuple(section["scales"]),
                   section["flip"])


@dataclass(frozen=True)
class InstanceLossSettings:
    """The SPOCO embedding loss (the ``instance.loss`` section).

    ``delta_v``, ``delta_d``: pull and push margins in embedding units (also the mean-shift
    bandwidth and merge distance); ``alpha``, ``beta``, ``gamma``: weights of pull, push and
    regulariser; ``dice_weight``, ``unlabelled_weight``: weights of the Dice and unlabelled-push terms.
    """

    delta_v: float
    delta_d: float
    alpha: float
    beta: float
    gamma: float
    dice_weight: float
    unlabelled_weight: float

    @classmethod
    def from_config(cls, section: Section) -> InstanceLossSettings:
        return cls(**{name: section[name] for name in _names(cls)})

    def spoco_arguments(self) -> dict[str, Any]:
        """The keyword arguments of :func:`selfpanoptic.losses.spoco_loss` (the unlabelled weight
        counts only where an unlabelled mask is given)."""
        return {"weights": {"dice": self.dice_weight, "unlabelled": self.unlabelled_weight},
                "delta_v": self.delta_v, "delta_d": self.delta_d,
                "alpha": self.alpha, "beta": self.beta, "gamma": self.gamma}


@dataclass(frozen=True)
class ClusteringSettings:
    """How predicted embeddings become instances (from the ``instance`` section).

    ``bandwidth``: the mean-shift bandwidth (``loss.delta_v``), ``delta_d``: the merge distance
    (``loss.delta_d``), both in embedding units; ``min_size``: smallest instance in pixels at the
    working resolution (``clustering.min_size``).
    """

    bandwidth: float
    delta_d: float
    min_size: int

    @classmethod
    def from_config(cls, instance: Section) -> ClusteringSettings:
        return cls(instance["loss"]["delta_v"], instance["loss"]["delta_d"], instance["clustering"]["min_size"])


@dataclass(frozen=True)
class CoLearningSettings:
    """Generative co-learning (``semantic.co_learning``, ``selftrain.semantic.co_learning``).

    ``target``: ``"rgb"`` or ``"depth"``; ``loss``: ``"l1"``, ``"l2"`` or ``"gan"``; ``skips``,
    ``channels``: the generation head; ``beta``, ``schedule``: the loss mix; ``depth_near_m``:
    metres at which the depth target reaches 1; ``noise_brightness``, ``noise_contrast``: the
    degradation of the rgb input (``noise.*``); ``gan_l1_weight``, ``gan_lr``, ``gan_channels``:
    ``gan.*``; ``samples``: images in the audit figure; ``target_batch_size``: unlabelled target
    images per step (``semantic.co_learning`` only; 0 elsewhere).
    """

    enabled: bool
    target: str
    loss: str
    skips: bool
    channels: int
    beta: float
    schedule: str
    depth_near_m: float
    noise_brightness: float
    noise_contrast: float
    gan_l1_weight: float
    gan_lr: float
    gan_channels: int
    samples: int
    target_batch_size: int = 0

    @classmethod
    def from_config(cls, section: Section) -> CoLearningSettings:
        noise, gan = section["noise"], section["gan"]
        return cls(section["enabled"], section["target"], section["loss"], section["skips"], section["channels"],
                   section["beta"], section["schedule"], section["depth_near_m"], noise["brightness"],
                   noise["contrast"], gan["l1_weight"], gan["lr"], gan["channels"], section["samples"],
                   section.get("target_batch_size", 0))


@dataclass(frozen=True)
class ViewSettings:
    """The teacher's views of a target image (from ``selftrain.semantic``): ``views`` per image (the
    image itself + zoom-in crops of relative side ``min_scale``..``max_scale``, each flipped with
    probability ``flip_p``)."""

    views: int
    min_scale: float
    max_scale: float
    flip_p: float

    @classmethod
    def from_config(cls, semantic: Section) -> ViewSettings:
        return cls(semantic["views"], semantic["min_scale"], semantic["max_scale"], semantic["flip_p"])


@dataclass(frozen=True)
class PseudoLabelSettings:
    """How fused teacher softmax becomes pseudo-labels (from ``selftrain.semantic``;
    :func:`selfpanoptic.pseudo.semantic.make_pseudo_labels`).

    ``threshold_ratio``, ``prior_temperature``, ``threshold_floor``, ``class_quantile``: the class
    thresholds; ``alignment``: the exponent lifting classes below their source share (0 = off).
    """

    threshold_ratio: float
    prior_temperature: float
    threshold_floor: float
    class_quantile: float
    alignment: float

    @classmethod
    def from_config(cls, semantic: Section) -> PseudoLabelSettings:
        return cls(**{name: semantic[name] for name in _names(cls)})


@dataclass(frozen=True)
class PhotometricNoiseSettings:
    """Photometric noise on the student's views (``selftrain.semantic.noise``): relative strengths
    of ``brightness``, ``contrast``, ``saturation``; probabilities ``grey_p``, ``blur_p``;
    ``blur_sigma``: (low, high) Gaussian sigma in pixels."""

    brightness: float
    contrast: float
    saturation: float
    grey_p: float
    blur_p: float
    blur_sigma: tuple[float, float]

    @classmethod
    def from_config(cls, section: Section) -> PhotometricNoiseSettings:
        return cls(section["brightness"], section["contrast"], section["saturation"], section["grey_p"],
                   section["blur_p"], tuple(section["blur_sigma"]))


@dataclass(frozen=True)
class SelfCorrectionSettings:
    """Linear self-correction (``selftrain.semantic.self_correction``): ``ancillary`` is
    ``"teacher"`` or ``"previous_round"``; alpha is annealed from ``alpha_start`` to ``alpha_end``."""

    enabled: bool
    ancillary: str
    alpha_start: float
    alpha_end: float

    @classmethod
    def from_config(cls, section: Section) -> SelfCorrectionSettings:
        return cls(**{name: section[name] for name in _names(cls)})


@dataclass(frozen=True)
class SelfSemanticSettings:
    """One round of semantic self-training (the ``selftrain.semantic`` section).

    ``source_batch_size``: labelled source images per step (0 = none), weighted by
    ``source_weight``; ``lambda_target``: weight of the pseudo-label loss; ``momentum``,
    ``momentum_every``: the teacher's update; ``prior_momentum``: the moving class prior's;
    ``focal_power``: class weight exponent; ``rare_class_temperature``: rare-class sampling (0 =
    uniform draws); ``freeze_bn``: keep the student's BatchNorm statistics; ``class_mix``:
    cross-domain mixing of labelled source classes into the views.
    """

    train: TrainSettings
    views: ViewSettings
    pseudo: PseudoLabelSettings
    noise: PhotometricNoiseSettings
    self_correction: SelfCorrectionSettings
    co_learning: CoLearningSettings
    source_batch_size: int
    source_weight: float
    lambda_target: float
    momentum: float
    momentum_every: int
    prior_momentum: float
    focal_power: float
    rare_class_temperature: float
    freeze_bn: bool
    class_mix: bool

    @classmethod
    def from_config(cls, section: Section) -> SelfSemanticSettings:
        nested = {"train", "views", "pseudo", "noise", "self_correction", "co_learning"}
        return cls(
            TrainSettings.from_config(section["train"]), ViewSettings.from_config(section),
            PseudoLabelSettings.from_config(section), PhotometricNoiseSettings.from_config(section["noise"]),
            SelfCorrectionSettings.from_config(section["self_correction"]),
            CoLearningSettings.from_config(section["co_learning"]),
            **{name: section[name] for name in _names(cls) if name not in nested},
        )


@dataclass(frozen=True)
class GuidanceSettings:
    """Instance-guided refinement of pseudo-labels (the ``selftrain.guidance`` section).

    ``from_round``: first guided round (0 = never); ``gt_instance_fraction``: share of true
    instances kept per image in the ground-truth ablation (0 = off); ``min_kept_share``,
    ``min_agreement``, ``fill_ignored``: which instances may relabel which pixels
    (:func:`selfpanoptic.pseudo.guidance.refine_with_instances`).
    """

    from_round: int
    gt_instance_fraction: float
    min_kept_share: float
    min_agreement: float
    fill_ignored: bool

    @classmethod
    def from_config(cls, section: Section) -> GuidanceSettings:
        return cls(**{name: section[name] for name in _names(cls)})


@dataclass(frozen=True)
class ObjectnessSettings:
    """The objectness classifier of pseudo instances (``selftrain.instance.objectness``): fitted on
    ``source_images`` source images with L2 penalty ``l2``; instances below ``min_score`` are dropped."""

    enabled: bool
    min_score: float
    source_images: int
    l2: float

    @classmethod
    def from_config(cls, section: Section) -> ObjectnessSettings:
        return cls(**{name: section[name] for name in _names(cls)})


@dataclass(frozen=True)
class SelfInstanceSettings:
    """One round of instance self-training of a group (the ``selftrain.instance`` section).

    ``source_fraction``: share of each batch from labelled source images; ``ema_momentum``: the
    EMA network's update; ``freeze_bn``: keep the student's BatchNorm statistics;
    ``consistency_weight``, ``max_rotation`` (degrees), ``consistency_anchors`` (per image): the
    rotation-consistency term; ``min_size`` (pixels), ``min_confidence``: which pseudo instances stay;
    ``class_mix``: paste half of a source crop's instances of the group onto each target crop.
    """

    train: TrainSettings
    objectness: ObjectnessSettings
    source_fraction: float
    ema_momentum: float
    freeze_bn: bool
    consistency_weight: float
    max_rotation: float
    consistency_anchors: int
    min_size: int
    min_confidence: float
    class_mix: bool

    @classmethod
    def from_config(cls, section: Section) -> SelfInstanceSettings:
        return cls(TrainSettings.from_config(section["train"]), ObjectnessSettings.from_config(section["objectness"]),
                   **{name: section[name] for name in _names(cls) if name not in ("train", "objectness")})


@dataclass(frozen=True)
class DiscriminatorSettings:
    """The translator's multi-scale patch discriminator (``translation.discriminator``): first-layer
    width ``channels``, ``layers`` stride-2 convolutions, ``scales`` discriminators, Adam ``lr``."""

    channels: int
    layers: int
    scales: int
    lr: float

    @classmethod
    def from_config(cls, section: Section) -> DiscriminatorSettings:
        return cls(**{name: section[name] for name in _names(cls)})


@dataclass(frozen=True)
class TranslationSettings:
    """Training the label-to-image translator (from the ``translation`` section).

    ``spectral_norm``: ``generator.spectral_norm``, shared by the discriminator; the loss
    weights ``adversarial``, ``feature_matching``, ``reconstruction`` and ``pyramid_levels`` are
    ``loss.*``. The generator's own spec is the models' (:func:`selfpanoptic.models.build_translator`).
    """

    train: TrainSettings
    discriminator: DiscriminatorSettings
    spectral_norm: bool
    adversarial: float
    feature_matching: float
    reconstruction: float
    pyramid_levels: int

    @classmethod
    def from_config(cls, section: Section) -> TranslationSettings:
        loss = section["loss"]
        return cls(TrainSettings.from_config(section["train"]),
                   DiscriminatorSettings.from_config(section["discriminator"]), section["generator"]["spectral_norm"],
                   loss["adversarial"], loss["feature_matching"], loss["reconstruction"], loss["pyramid_levels"])


@dataclass(frozen=True)
class MorphologySettings:
    """The clean-up of instance masks before fusion (:func:`selfpanoptic.fusion.clean_instance_masks`).

    ``opening_radius``, ``closing_radius``: radii in pixels of the opening and closing disks
    (0 skips that step); ``min_size``: instances with fewer pixels after the clean-up are removed.
    """

    opening_radius: int
    closing_radius: int
    min_size: int


@dataclass(frozen=True)
class FusionSettings:
    """How an instance map and a semantic map become one panoptic map.

    ``stuff_min_area``: stuff segments with fewer pixels become void; ``morphology``: the
    clean-up of the instance masks, None for none.
    """

    stuff_min_area: int = 0
    morphology: MorphologySettings | None = None

    @classmethod
    def from_config(cls, section: Section) -> FusionSettings:
        """From a validated ``panoptic`` section: ``morphology`` only when ``morphology.enabled``."""
        morphology = section["morphology"]
        names = _names(MorphologySettings)
        cleanup = MorphologySettings(**{name: morphology[name] for name in names}) if morphology["enabled"] else None
        return cls(section["stuff_min_area"], cleanup)

