"""``selfpanoptic pseudo-instance``: the pseudo instance masks a round's instance self-training starts from.

The masks are made by :func:`selfpanoptic.pseudo.masks.pseudo_instances_batch` (a batch of
images at a time), the clustering the training step applies to the EMA network's embeddings of
its crops. This file is that function applied to the round-start model (round r-1's) on every
whole target train image: a snapshot a person can audit (``selfpanoptic audit --ground-truth``),
not something training reads. During the round the EMA network moves, so the masks training sees
drift away from this snapshot.
"""

from __future__ import annotations

import argparse

from ._instances import add_instance_io, load_instance_groups, round_objectness, write_instances
from .common import COMPUTE, selftrain_settings, settings, settings_parent, torch_setup

HELP = "a round's pseudo instance masks on the target train images (the audited round-start snapshot)"
PARENTS = [settings_parent("selftrain", "instance", "inference"), *COMPUTE]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_instance_io(parser)
    parser.add_argument("--source", help="labelled source cache, on which the objectness classifier is fitted "
                        "(selftrain.instance.objectness)")


def run(args: argparse.Namespace) -> None:
    from ..intermediates import InstancePseudoLabels
    from ..pseudo.masks import pseudo_instances_batch

    device = torch_setup(args)
    instance, pseudo = settings(args, "instance"), selftrain_settings(args)["instance"]
    delta_v, delta_d = instance["loss"]["delta_v"], instance["loss"]["delta_d"]
    # each group's classifier, fitted as its round's training fits it
    groups = load_instance_groups(args.models, device)
    objectness = {}
    if pseudo["objectness"]["enabled"]:
        for model, classes in groups:
            objectness[tuple(classes)] = round_objectness(pseudo, instance["loss"], model, args.source, classes, device)[0]

    def cluster(embeddings, semantic, confidence, classes):  # a batch of images at once
        return pseudo_instances_batch(embeddings, semantic, confidence, classes, delta_v, delta_d,
                                      pseudo["min_size"], pseudo["min_confidence"], device=device,
                                      objectness=objectness.get(tuple(classes)),
                                      min_objectness=pseudo["objectness"]["min_score"])

    # pseudo masks are made on the train split's working-resolution prediction: nothing to scale
    write_instances(args, InstancePseudoLabels, lambda area_ratio: cluster, {"instance": instance, "pseudo": pseudo},
                    settings(args, "inference"), device, groups=groups)
