"""``selfpanoptic pretrain-instance``: train the embedding U-Net of one class group on labelled instances."""

from __future__ import annotations

import argparse

from .common import (
    COMPUTE, add_training_outputs, add_translated_source, data_workers, progress, settings, settings_parent, torch_setup,
    translated_images, validation_data,
)

HELP = "train the instance embedding model of one class group"
PARENTS = [settings_parent("instance"), *COMPUTE]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, help="dataset cache (HDF5) with instance labels")
    parser.add_argument("--group", required=True, help="class group (a key of instance.groups)")
    add_translated_source(parser)
    add_training_outputs(parser, "pretrain instance")


def run(args: argparse.Namespace) -> None:
    import contextlib

    import torch

    from ..errors import InputError
    from ..intermediates import DatasetCache
    from ..models import build_instance_model, init_from_checkpoint
    from ..train.engine import finish, save_model_file, train
    from ..classes import class_id
    from ..settings import InstanceLossSettings, TrainSettings
    from ..train.instance import instance_step
    from ..train.validation import instance_validation

    section = settings(args, "instance")
    if args.group not in section["groups"]:
        raise InputError(f"unknown instance group {args.group!r}; the config defines {', '.join(section['groups'])}")
    device = torch_setup(args)
    spec, classes = section["model"], section["groups"][args.group]
    train_settings = TrainSettings.from_config(section["train"])
    loss = InstanceLossSettings.from_config(section["loss"])
    torch.manual_seed(train_settings.seed)
    model = build_instance_model(spec)
    init_from_checkpoint(model, spec["init"], "instance")
    with contextlib.ExitStack() as stack:
        cache = stack.enter_context(DatasetCache.open(args.data))
        translated = translated_images(args, cache, stack)
        step = instance_step(cache, classes, train_settings, loss, device, translated)
        val = validation_data(args, train_settings, stack)
        validate = None
        if val is not None:
            validate = instance_validation(val, [class_id(c) for c in classes], loss, train_settings.validate_images,
                                           device)
        identity = {"settings": section, "group": args.group, "data": str(args.data),
                    "translated": [str(args.translated), args.translated_share] if translated else None}
        result = train(model, step, train_settings, args.work_dir, identity, device, args.desc, progress(args),
                       data_workers=data_workers(args, device), validate=validate)
    save_model_file(args.out, model, "instance", spec, (cache.height, cache.width), {
        "group": args.group, "classes": classes, "delta_v": loss.delta_v, "delta_d": loss.delta_d,
        "train_seconds": result.seconds, "images_per_second": result.images_per_second,
    })
    finish(args.work_dir)
    print(f"{args.desc} [{args.group}]: {result.summary()} -> {args.out}")
