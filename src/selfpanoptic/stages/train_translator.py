"""``selfpanoptic train-translator``: learn target train images from their label maps (SPADE)."""

from __future__ import annotations

import argparse

from .common import COMPUTE, add_training_outputs, data_workers, progress, settings, settings_parent, torch_setup

HELP = "train the label-to-image translator (SPADE) on target train images and their label maps"
PARENTS = [settings_parent("translation"), *COMPUTE]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--images", required=True, help="target train cache (HDF5): the images to learn")
    parser.add_argument("--labels", help="the label maps of those images: a round's semantic prediction "
                        "(translation.labels: prediction) or pseudo-label file (pseudo) on the same cache; "
                        "without it (translation.labels_from: ground_truth) the cache's own labels")
    add_training_outputs(parser, "train translator")


def label_reader(args: argparse.Namespace, section, cache, stack):
    """``read(i)`` of image i's label map, (H, W) uint8, 255 = void; from ``--labels`` or the cache."""
    from ..errors import InputError
    from ..intermediates import SemanticPrediction, SemanticPseudoLabels

    if section["labels_from"] == "ground_truth":
        if args.labels:
            raise InputError("translation.labels_from is ground_truth, which reads the cache's labels, but --labels "
                             "was given", args.labels, "leave out --labels, or set translation.labels_from: round<r>")
        if not cache.labelled:
            raise InputError("translation.labels_from is ground_truth, but the target train split has no labels",
                             cache.path, "set translation.labels_from to a round (round0, round1, ...)")
        return lambda i: cache.read("labels", i)
    if not args.labels:
        raise InputError(f"translation.labels_from is {section['labels_from']}: the translator needs that round's "
                         f"{section['labels']} label maps, and no --labels file was given",
                         fix="pass --labels with the round's prediction or pseudo-label file on the target train cache")
    kind = SemanticPrediction if section["labels"] == "prediction" else SemanticPseudoLabels
    labels = stack.enter_context(kind.open(args.labels, cache.image_ids, cache.path))
    if labels["labels"].shape[1:] != (cache.height, cache.width):
        raise InputError(f"its label maps are {labels['labels'].shape[1:]} pixels, the images "
                         f"{(cache.height, cache.width)}", args.labels,
                         "predict on the same cache at its working resolution (no --full-resolution)")
    return lambda i: labels["labels"][i]


def run(args: argparse.Namespace) -> None:
    import contextlib

    import torch

    from ..classes import CLASS_NAMES
    from ..intermediates import DatasetCache
    from ..models import build_translator
    from ..settings import TranslationSettings
    from ..train.engine import finish, save_model_file, train
    from ..train.translator import Discriminator, translator_step

    section = settings(args, "translation")
    translation = TranslationSettings.from_config(section)
    device = torch_setup(args)
    torch.manual_seed(translation.train.seed)
    generator = build_translator(section["generator"])
    discriminator = Discriminator(translation, device)
    with contextlib.ExitStack() as stack:
        cache = stack.enter_context(DatasetCache.open(args.images))
        read_labels = label_reader(args, section, cache, stack)
        step = translator_step(cache, read_labels, translation, discriminator, device)
        identity = {"settings": section, "images": str(args.images), "labels": str(args.labels)}
        result = train(generator, step, translation.train, args.work_dir, identity, device, args.desc, progress(args),
                       extra_state={"discriminator": discriminator}, data_workers=data_workers(args, device))
        size = (cache.height, cache.width)
    save_model_file(args.out, generator, "translator", section["generator"], size, {
        "classes": list(CLASS_NAMES), "labels_from": section["labels_from"],
        "labels": section["labels"], "train_seconds": result.seconds, "images_per_second": result.images_per_second,
    })
    finish(args.work_dir)
    print(f"{args.desc}: {result.summary()} -> {args.out}")
