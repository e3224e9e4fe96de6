"""``selfpanoptic train-semantic-gan``: train SemanticGAN's generator of images and label maps."""

from __future__ import annotations

import argparse

from ._gan_data import add_gan_data, gan_data
from .common import COMPUTE, add_training_outputs, progress, settings, settings_parent, torch_setup

HELP = "train SemanticGAN's generator of images and their label maps (StyleGAN2-style, two discriminators)"
PARENTS = [settings_parent("semantic_gan"), *COMPUTE]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_gan_data(parser)
    add_training_outputs(parser, "train semantic gan")


def generator_spec(section: dict, size: tuple[int, int]) -> dict:
    """The generator file's spec: ``semantic_gan.generator``, the classes' count and the size it draws."""
    from ..classes import NUM_CLASSES

    return dict(section["generator"], num_classes=NUM_CLASSES, size=[int(size[0]), int(size[1])])


def run(args: argparse.Namespace) -> None:
    import contextlib

    import torch

    from ..classes import CLASS_NAMES
    from ..errors import InputError
    from ..models import build_semantic_gan
    from ..gan_settings import SemanticGanSettings
    from ..train.engine import finish, save_model_file, train
    from ..train.semantic_gan import GanCritics, semantic_gan_step

    section = settings(args, "semantic_gan")
    gan = SemanticGanSettings.from_config(section)
    if args.processes > 1:
        raise InputError(f"SemanticGAN trains on one process, not {args.processes}",
                         fix="set resources.train.processes to 1 (and resources.train.gpu to at most 1) for it")
    device = torch_setup(args)
    with contextlib.ExitStack() as stack:
        data = gan_data(args, section, stack)
        size = (data.images.height, data.images.width)
        levels = section["generator"]["levels"]
        if size[0] % 2 ** levels or size[1] % 2 ** levels:
            raise InputError(f"the images are {size[0]}x{size[1]} pixels, not divisible by 2**levels = {2 ** levels}",
                             args.target, "lower semantic_gan.generator.levels, or choose data.height and data.width "
                             f"divisible by {2 ** levels}")
        spec = generator_spec(section, size)
        torch.manual_seed(gan.train.seed)
        generator = build_semantic_gan(spec).to(device)
        critics = GanCritics(generator, gan, device)
        step = semantic_gan_step(data, generator, critics, gan, device)
        identity = {"settings": section, "target": str(args.target), "labels": str(args.labels),
                    "source": str(args.source), "translated": str(args.translated)}
        result = train(generator, step, gan.train, args.work_dir, identity, device, args.desc, progress(args),
                       extra_state={"critics": critics})
        critics.update_ema(generator)  # the last step's weights
    save_model_file(args.out, critics.ema, "semantic_gan", spec, size, {
        "classes": list(CLASS_NAMES), "pairs": section["pairs"], "labels_from": section["labels_from"],
        "train_seconds": result.seconds, "images_per_second": result.images_per_second,
    })
    finish(args.work_dir)
    print(f"{args.desc}: {result.summary()} -> {args.out}")
