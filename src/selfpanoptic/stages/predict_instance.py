"""``selfpanoptic predict-instance``: instances by clustering embeddings inside predicted thing masks."""

from __future__ import annotations

import argparse

from ._instances import add_instance_io, write_instances
from .common import COMPUTE, settings, settings_parent, torch_setup

HELP = "instances by clustering embeddings inside predicted thing masks"
PARENTS = [settings_parent("instance", "inference"), *COMPUTE]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_instance_io(parser)


def run(args: argparse.Namespace) -> None:
    from ..clustering import instances_from_embeddings_batch
    from ..intermediates import InstancePrediction

    device = torch_setup(args)
    section = settings(args, "instance")
    bandwidth, delta_d = section["loss"]["delta_v"], section["loss"]["delta_d"]
    min_size = section["clustering"]["min_size"]

    def cluster(embeddings, semantic, confidence, classes):  # a batch of images at once
        return instances_from_embeddings_batch(embeddings, semantic, thing_classes=classes, bandwidth=bandwidth,
                                               delta_d=delta_d, min_size=min_size, device=device)

    write_instances(args, InstancePrediction, cluster, {"instance": section}, settings(args, "inference"), device)
