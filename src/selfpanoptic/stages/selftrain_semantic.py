"""``selfpanoptic selftrain-semantic``: one round of SAC-style semantic self-training."""

from __future__ import annotations

import argparse

from ._guidance import add_guidance_io, load_guidance, pseudo_class_probabilities, source_shares
from .common import (
    COMPUTE, add_training_outputs, data_workers, progress, selftrain_settings, settings_parent, torch_setup,
    validation_data,
)

HELP = "one round of SAC-style semantic self-training"
PARENTS = [settings_parent("selftrain"), *COMPUTE]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="the previous round's semantic model file (student and teacher start here)")
    parser.add_argument("--data", required=True, help="target train cache (HDF5); its labels are not used")
    parser.add_argument("--source", help="labelled source cache for the joint source loss")
    parser.add_argument("--pseudo-labels", help="the round's pseudo-label file (its class prior seeds the moving prior)")
    add_guidance_io(parser)
    parser.add_argument("--round", required=True, type=int, help="round number (1, 2, ...)")
    add_training_outputs(parser, "self-train semantic")


def run(args: argparse.Namespace) -> None:
    import contextlib

    from ..distributed import is_main
    from ..errors import InputError
    from ..intermediates import DatasetCache
    from ..models import load_model_file, model_from_saved
    from ..pseudo.teacher import frozen_copy
    from ..settings import GuidanceSettings, SelfSemanticSettings
    from ..train.co_learning import CoLearning, co_learning_samples_path, segmenter_of
    from ..train.engine import finish, save_model_file, train
    from ..train.self_semantic import SelfSemanticData, self_semantic_step
    from ..train.validation import semantic_validation

    device = torch_setup(args)
    section = selftrain_settings(args)
    sem = SelfSemanticSettings.from_config(section["semantic"])
    saved = load_model_file(args.model, "semantic")
    spec, student = saved["spec"], model_from_saved(saved, args.model)
    teacher = frozen_copy(student).to(device)
    previous = None
    if sem.self_correction.enabled and sem.self_correction.ancillary == "previous_round":
        previous = frozen_copy(student).to(device)
    co_learning = CoLearning(sem.co_learning, sem.train.steps, device) if sem.co_learning.enabled else None
    prior, target_probabilities = _starting_prior(args.pseudo_labels, sem.rare_class_temperature)
    with contextlib.ExitStack() as stack:
        target = stack.enter_context(DatasetCache.open(args.data))
        guide = load_guidance(section["guidance"], args.round, target, args.guidance_instances, sem.train.seed,
                              stack)
        source = None
        if sem.class_mix and not args.source:
            raise InputError("selftrain.semantic.class_mix pastes labelled source classes onto the target views, "
                             "but no --source cache was given", fix="pass --source, or set class_mix to false")
        if args.source and (sem.source_batch_size > 0 or sem.class_mix):
            source = stack.enter_context(DatasetCache.open(args.source))
        extra_state = {"teacher": teacher, "prior": prior}
        if co_learning is not None:
            co_learning.check_depth(target, source)
            student = co_learning.wrap(student)
            extra_state["co_learning"] = co_learning
        data = SelfSemanticData(target, source, guide, GuidanceSettings.from_config(section["guidance"]),
                                source_shares(sem.pseudo.alignment, args.source), target_probabilities)
        step = self_semantic_step(teacher, prior, data, sem, device, co_learning, previous)
        val = validation_data(args, sem.train, stack)
        validate = semantic_validation(val, sem.train.validate_images, device) if val is not None else None
        identity = {"settings": section, "round": args.round, "init": str(args.model), "data": str(args.data),
                    "source": str(args.source), "guidance": str(args.guidance_instances),
                    "pseudo_labels": str(args.pseudo_labels)}
        result = train(student, step, sem.train, args.work_dir, identity, device, args.desc,
                       progress(args), extra_state=extra_state, data_workers=data_workers(args, device),
                       validate=validate)
        if co_learning is not None and is_main():  # rank 0 writes the files
            co_learning.write_samples(student, target, co_learning_samples_path(args.out), sem.train.seed)
    save_model_file(args.out, segmenter_of(student), "semantic", spec, (target.height, target.width), {
        "round": args.round, "prior": prior.value, "train_seconds": result.seconds,
        "images_per_second": result.images_per_second,
    })
    finish(args.work_dir)
    print(f"{args.desc}: {result.summary()} -> {args.out}")


def _starting_prior(pseudo_labels: str | None, rare_class_temperature: float):
    """The moving class prior's start (the round's pseudo-label file's, else the initial prior)
    and the target images' draw probabilities ``(N,)`` of rare-class sampling (None: uniform)."""
    from ..classes import NUM_CLASSES
    from ..errors import InputError
    from ..intermediates import SemanticPseudoLabels
    from ..pseudo.thresholds import ClassPrior, initial_prior

    if not pseudo_labels:
        if rare_class_temperature > 0:
            raise InputError("selftrain.semantic.rare_class_temperature > 0 samples target images by their "
                             "pseudo-label classes, but no --pseudo-labels file was given",
                             fix="pass the round's pseudo-label file, or set rare_class_temperature to 0")
        return ClassPrior(initial_prior(NUM_CLASSES)), None
    with SemanticPseudoLabels.open(pseudo_labels) as pseudo:
        probabilities = None
        if rare_class_temperature > 0:
            probabilities = pseudo_class_probabilities(pseudo, rare_class_temperature)
        return ClassPrior(pseudo.prior), probabilities
