"""``selfpanoptic predict-instance``: instances by clustering embeddings inside predicted thing masks.

Instances are made at the semantic prediction's resolution. For a full-resolution prediction
(``predict-semantic --full-resolution``) the embeddings are upsampled bilinearly to it before
clustering, and ``instance.clustering.min_size`` (pixels at the working resolution) is scaled by
the ratio of the areas, so the same objects are kept at either resolution.
"""

from __future__ import annotations

import argparse

from ._instances import add_instance_io, prediction_clustering, write_instances
from .common import COMPUTE, settings, settings_parent, torch_setup

HELP = "instances by clustering embeddings inside predicted thing masks"
PARENTS = [settings_parent("instance", "inference"), *COMPUTE]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_instance_io(parser)


def run(args: argparse.Namespace) -> None:
    from ..intermediates import InstancePrediction

    device = torch_setup(args)
    section = settings(args, "instance")
    write_instances(args, InstancePrediction, lambda area_ratio: prediction_clustering(section, device, area_ratio),
                    {"instance": section}, settings(args, "inference"), device)
