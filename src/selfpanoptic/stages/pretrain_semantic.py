"""``selfpanoptic pretrain-semantic``: train the DeepLab on a labelled cache (round 0: the mixed source;
the oracle: the target train labels)."""

from __future__ import annotations

import argparse

from .common import COMPUTE, add_training_outputs, progress, settings, settings_parent, torch_setup

HELP = "train the semantic DeepLab on a labelled cache (source, or target for the oracle)"
PARENTS = [settings_parent("semantic"), *COMPUTE]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, help="dataset cache (HDF5) with labels")
    add_training_outputs(parser, "pretrain semantic")


def run(args: argparse.Namespace) -> None:
    import torch

    from ..intermediates import DatasetCache
    from ..models import build_semantic_model, init_from_checkpoint
    from ..train.engine import finish, save_model_file, train
    from ..train.semantic import semantic_step

    device = torch_setup(args)
    section = settings(args, "semantic")
    spec, train_settings = section["model"], section["train"]
    torch.manual_seed(train_settings["seed"])
    model = build_semantic_model(spec)
    init_from_checkpoint(model, spec["init"], "semantic")
    with DatasetCache.open(args.data) as cache:
        step = semantic_step(cache, train_settings, device)
        identity = {"settings": section, "data": str(args.data)}
        result = train(model, step, train_settings, args.work_dir, identity, device, args.desc, progress(args))
    save_model_file(args.out, model, "semantic", spec,
                    {"train_seconds": result.seconds, "images_per_second": result.images_per_second})
    finish(args.work_dir)
    print(f"{args.desc}: {result.summary()} -> {args.out}")
