"""What ``pseudo-semantic`` and ``selftrain-semantic`` share: the instance maps guiding a round
and the source class shares that ``alignment`` lifts starving classes towards."""

from __future__ import annotations

import argparse
from typing import Any


def add_guidance_io(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--guidance-instances", metavar="H5",
                        help="the previous round's instance prediction on the same images (when it guides this round)")


def source_shares(alignment: float, path: str | None):
    """The pixel share ``(C,)`` float32 tensor of each class in the labels of the source cache
    ``path``, when ``alignment`` (``selftrain.semantic.alignment``) is > 0; else None."""
    if alignment <= 0:
        return None
    import numpy as np
    import torch

    from ..classes import NUM_CLASSES
    from ..errors import InputError
    from ..intermediates import DatasetCache

    if not path:
        raise InputError("selftrain.semantic.alignment > 0 lifts classes towards their share in the source labels, "
                         "but no source cache was given", fix="pass --source CACHE, or set alignment to 0")
    counts = np.zeros(NUM_CLASSES, dtype=np.int64)
    with DatasetCache.open(path) as source:
        for i in range(len(source)):
            counts += np.bincount(source.read("labels", i).ravel(), minlength=256)[:NUM_CLASSES]
    if counts.sum() == 0:
        raise InputError("the source labels have no labelled pixel", path, "check the source cache")
    return torch.from_numpy(counts / counts.sum()).float()


def load_guidance(guidance: dict[str, Any], round_index: int, cache, path: str | None, seed: int, stack):
    """The guiding instance maps of round ``round_index`` on ``cache``'s images, or None.

    Indexed like an ``(N, H, W)`` int32 array, read per image
    (:func:`~selfpanoptic.pseudo.semantic.guidance_instances`): the split is never held whole.
    ``guidance``: the validated ``selftrain.guidance`` section; ``path``: round r-1's instance
    prediction file, required when it says the round is guided by predicted instances, opened
    on ``stack`` (a :class:`contextlib.ExitStack`, so it stays open while the maps are read);
    ``seed``: the ground-truth ablation's draws.
    """
    import numpy as np

    from ..config import guidance_mode
    from ..errors import InputError
    from ..intermediates import InstancePrediction, StackView
    from ..pseudo.semantic import guidance_instances

    mode = guidance_mode(guidance, round_index)
    predicted = ground_truth = None
    if mode == "predicted":
        if path is None:
            raise InputError(
                f"round {round_index} is guided by the previous round's instances, but none were given",
                fix="pass --guidance-instances with round r-1's instance prediction on the target train split",
            )
        predicted = StackView(stack.enter_context(InstancePrediction.open(path, cache.image_ids, cache.path)),
                              "instances", np.int32)
    elif mode == "ground_truth":
        ground_truth = StackView(cache, "instances", np.int32)
    return guidance_instances(mode, guidance["gt_instance_fraction"], ground_truth, predicted, seed)


def pseudo_class_probabilities(pseudo, temperature: float):
    """Rare-class sampling of the target images: ``(N,)`` draw probabilities from the classes of
    each image's round-start pseudo-labels (``pseudo``: an open
    :class:`~selfpanoptic.intermediates.SemanticPseudoLabels`), by
    :func:`~selfpanoptic.train.data.rare_class_probabilities`."""
    import numpy as np

    from ..classes import NUM_CLASSES
    from ..train.data import rare_class_probabilities

    labels = pseudo.h5["labels"]
    counts = np.stack([np.bincount(labels[i].ravel(), minlength=256)[:NUM_CLASSES] for i in range(labels.shape[0])])
    return rare_class_probabilities(counts, temperature)
