"""``selfpanoptic pretrain-semantic``: train the DeepLab on a labelled cache (round 0: the mixed source;
the oracle: the target train labels)."""

from __future__ import annotations

import argparse

from .common import (
    COMPUTE, add_sampled_pairs, add_training_outputs, add_translated_source, data_workers, progress, sampled_pairs,
    settings, settings_parent, torch_setup, translated_images, validation_data,
)

HELP = "train the semantic DeepLab on a labelled cache (source, or target for the oracle)"
PARENTS = [settings_parent("semantic"), *COMPUTE]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, help="dataset cache (HDF5) with labels")
    parser.add_argument("--target", help="target train cache (HDF5) whose images co-learning also generates "
                        "(semantic.co_learning.target_batch_size per step; labels not read)")
    add_translated_source(parser)
    add_sampled_pairs(parser)
    add_training_outputs(parser, "pretrain semantic")


def run(args: argparse.Namespace) -> None:
    import contextlib

    import torch

    from ..distributed import is_main
    from ..intermediates import DatasetCache
    from ..models import build_semantic_model, init_from_checkpoint
    from ..settings import CoLearningSettings, TrainSettings
    from ..train.co_learning import CoLearning, co_learning_samples_path, segmenter_of
    from ..train.engine import finish, save_model_file, train
    from ..train.semantic import semantic_step
    from ..train.validation import semantic_validation

    device = torch_setup(args)
    section = settings(args, "semantic")
    spec, train_settings = section["model"], TrainSettings.from_config(section["train"])
    torch.manual_seed(train_settings.seed)
    model = build_semantic_model(spec)
    init_from_checkpoint(model, spec["init"], "semantic")
    co_settings = CoLearningSettings.from_config(section["co_learning"])
    co_learning = CoLearning(co_settings, train_settings.steps, device) if co_settings.enabled else None
    with contextlib.ExitStack() as stack:
        cache = stack.enter_context(DatasetCache.open(args.data))
        target = stack.enter_context(DatasetCache.open(args.target)) if co_learning and args.target else None
        extra_state = {}
        if co_learning is not None:
            co_learning.check_depth(cache, target)
            model = co_learning.wrap(model)
            extra_state["co_learning"] = co_learning
        translated, sampled = translated_images(args, cache, stack), sampled_pairs(args, cache, stack)
        step = semantic_step(cache, train_settings, device, co_learning, target, co_settings.target_batch_size,
                             translated, sampled)
        val = validation_data(args, train_settings, stack)
        validate = semantic_validation(val, train_settings.validate_images, device) if val is not None else None
        identity = {"settings": section, "data": str(args.data),
                    "target": str(args.target) if co_learning else None,
                    "translated": [str(args.translated), args.translated_share] if translated else None,
                    **({"sampled": [str(args.sampled), args.sampled_share]} if sampled else {})}
        result = train(model, step, train_settings, args.work_dir, identity, device, args.desc, progress(args),
                       extra_state=extra_state, data_workers=data_workers(args, device), validate=validate)
        if co_learning is not None and is_main():  # rank 0 writes the files
            co_learning.write_samples(model, target or cache, co_learning_samples_path(args.out), train_settings.seed)
    save_model_file(args.out, segmenter_of(model), "semantic", spec, (cache.height, cache.width),
                    {"train_seconds": result.seconds, "images_per_second": result.images_per_second})
    finish(args.work_dir)
    print(f"{args.desc}: {result.summary()} -> {args.out}")
