"""``selfpanoptic pretrain-instance``: train the embedding U-Net of one class group on labelled instances."""

from __future__ import annotations

import argparse

from .common import COMPUTE, add_training_outputs, data_workers, progress, settings, settings_parent, torch_setup

HELP = "train the instance embedding model of one class group"
PARENTS = [settings_parent("instance"), *COMPUTE]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, help="dataset cache (HDF5) with instance labels")
    parser.add_argument("--group", required=True, help="class group (a key of instance.groups)")
    add_training_outputs(parser, "pretrain instance")


def run(args: argparse.Namespace) -> None:
    import torch

    from ..errors import InputError
    from ..intermediates import DatasetCache
    from ..models import build_instance_model, init_from_checkpoint
    from ..train.engine import finish, save_model_file, train
    from ..train.instance import instance_step

    section = settings(args, "instance")
    if args.group not in section["groups"]:
        raise InputError(f"unknown instance group {args.group!r}; the config defines {', '.join(section['groups'])}")
    device = torch_setup(args)
    spec, train_settings, loss = section["model"], section["train"], section["loss"]
    classes = section["groups"][args.group]
    torch.manual_seed(train_settings["seed"])
    model = build_instance_model(spec)
    init_from_checkpoint(model, spec["init"], "instance")
    with DatasetCache.open(args.data) as cache:
        step = instance_step(cache, classes, train_settings, loss, device)
        identity = {"settings": section, "group": args.group, "data": str(args.data)}
        result = train(model, step, train_settings, args.work_dir, identity, device, args.desc, progress(args),
                       data_workers=data_workers(args, device))
    save_model_file(args.out, model, "instance", spec, {
        "group": args.group, "classes": classes, "delta_v": loss["delta_v"], "delta_d": loss["delta_d"],
        "train_seconds": result.seconds, "images_per_second": result.images_per_second,
    })
    finish(args.work_dir)
    print(f"{args.desc} [{args.group}]: {result.summary()} -> {args.out}")
