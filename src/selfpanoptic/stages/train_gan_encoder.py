"""``selfpanoptic train-gan-encoder``: train SemanticGAN's encoder from images to W+ styles."""

from __future__ import annotations

import argparse

from ._gan_data import add_gan_data, gan_data
from .common import COMPUTE, add_training_outputs, progress, settings, settings_parent, torch_setup

HELP = "train SemanticGAN's encoder (images -> W+ styles) against the frozen generator"
PARENTS = [settings_parent("semantic_gan"), *COMPUTE]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--generator", required=True, help="generator file (train-semantic-gan)")
    add_gan_data(parser)
    add_training_outputs(parser, "train gan encoder")


def run(args: argparse.Namespace) -> None:
    import contextlib

    import torch

    from ..models import build_gan_encoder
    from ..semantic_gan import load_generator
    from ..gan_settings import GanEncoderSettings
    from ..train.engine import finish, save_model_file, train
    from ..train.gan_encoder import gan_encoder_step

    section = settings(args, "semantic_gan")
    encoder_settings = GanEncoderSettings.from_config(section)
    device = torch_setup(args)
    with contextlib.ExitStack() as stack:
        data = gan_data(args, section, stack)
        generator, saved = load_generator(args.generator, (data.images.height, data.images.width))
        generator = generator.to(device)
        spec = {"stages": section["encoder"]["stages"], "channels": section["encoder"]["channels"],
                "num_styles": generator.num_styles, "style_dim": generator.style_dim}
        torch.manual_seed(encoder_settings.train.seed)
        encoder = build_gan_encoder(spec).to(device)
        encoder.mean_style.copy_(generator.mean_style())
        step = gan_encoder_step(data, generator, encoder_settings, device)
        identity = {"settings": section, "generator": str(args.generator), "target": str(args.target),
                    "labels": str(args.labels), "source": str(args.source), "translated": str(args.translated)}
        result = train(encoder, step, encoder_settings.train, args.work_dir, identity, device, args.desc,
                       progress(args))
    save_model_file(args.out, encoder, "gan_encoder", spec, (generator.size[0], generator.size[1]), {
        "generator": str(args.generator), "generator_spec": saved["spec"],
        "train_seconds": result.seconds, "images_per_second": result.images_per_second,
    })
    finish(args.work_dir)
    print(f"{args.desc}: {result.summary()} -> {args.out}")
