"""``selfpanoptic selftrain-instance``: one round of SPOCO-style instance self-training of a class group."""

from __future__ import annotations

import argparse

from .common import (
    COMPUTE, add_training_outputs, data_workers, progress, selftrain_settings, settings, settings_parent, torch_setup,
    validation_data,
)

HELP = "one round of SPOCO-style instance self-training of a class group"
PARENTS = [settings_parent("selftrain", "instance"), *COMPUTE]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="the previous round's instance model file of the group")
    parser.add_argument("--data", required=True, help="target train cache (HDF5); its labels are not used")
    parser.add_argument("--semantic", required=True, help="this round's semantic prediction on the target train images")
    parser.add_argument("--source", help="labelled source cache, mixed into each batch")
    parser.add_argument("--group", required=True, help="class group (a key of instance.groups)")
    parser.add_argument("--round", required=True, type=int, help="round number (1, 2, ...)")
    add_training_outputs(parser, "self-train instance")


def run(args: argparse.Namespace) -> None:
    import contextlib

    import numpy as np

    from ..classes import class_id
    from ..errors import InputError
    from ..intermediates import DatasetCache, SemanticPrediction, StackView
    from ..models import load_model_file, model_from_saved
    from ..pseudo.teacher import frozen_copy
    from ..settings import InstanceLossSettings, SelfInstanceSettings
    from ..train.engine import finish, save_model_file, train
    from ..train.self_instance import SelfInstanceData, self_instance_step
    from ..train.validation import instance_validation
    from ._instances import round_objectness

    device = torch_setup(args)
    section, loss = selftrain_settings(args)["instance"], settings(args, "instance")["loss"]
    saved = load_model_file(args.model, "instance")
    if saved.get("group") != args.group:
        raise InputError(f"model is of group {saved.get('group')!r}, not {args.group!r}", args.model)
    classes = [class_id(name) for name in saved["classes"]]
    student = model_from_saved(saved, args.model)
    ema = frozen_copy(student).to(device)
    stats: dict[str, int] = {}
    with contextlib.ExitStack() as stack:
        target = stack.enter_context(DatasetCache.open(args.data))
        # read per image by the steps (and their data workers), never the whole split
        pred = stack.enter_context(SemanticPrediction.open(args.semantic, target.image_ids, args.data))
        semantic, confidence = StackView(pred, "labels"), StackView(pred, "confidence", np.float32)
        source = stack.enter_context(DatasetCache.open(args.source)) if args.source else None
        objectness, fitted = round_objectness(section, loss, ema, args.source, classes, device)
        instance_settings = SelfInstanceSettings.from_config(section)
        loss_settings = InstanceLossSettings.from_config(loss)
        step = self_instance_step(ema, classes, SelfInstanceData(target, semantic, confidence, source),
                                  instance_settings, loss_settings, device, stats, objectness)
        val = validation_data(args, instance_settings.train, stack)
        validate = None
        if val is not None:
            validate = instance_validation(val, classes, loss_settings, instance_settings.train.validate_images, device)
        identity = {"settings": section, "loss": loss, "group": args.group, "round": args.round,
                    "init": str(args.model), "data": str(args.data), "semantic": str(args.semantic),
                    "source": str(args.source)}
        result = train(student, step, instance_settings.train, args.work_dir, identity, device, args.desc,
                       progress(args), extra_state={"ema": ema}, data_workers=data_workers(args, device), validate=validate)
    extra = {key: saved[key] for key in ("group", "classes", "delta_v", "delta_d") if key in saved}
    save_model_file(args.out, student, "instance", saved["spec"], (target.height, target.width), {
        **extra, "round": args.round, "train_seconds": result.seconds, "images_per_second": result.images_per_second,
        **({"objectness": fitted} if fitted else {}),
    })
    finish(args.work_dir)
    print(f"{args.desc} [{args.group}]: {result.summary()}, {stats['pseudo_instances']} pseudo instances -> {args.out}")
