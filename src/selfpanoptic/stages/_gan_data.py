"""The images and labelled pairs SemanticGAN's generator and encoder learn from (``semantic_gan.pairs``)."""

from __future__ import annotations

import argparse

__all__ = ["add_gan_data", "gan_data"]


def add_gan_data(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--target", required=True, help="target train cache (HDF5)")
    parser.add_argument("--labels", help="pairs: pseudo: the labels_from run's prediction or pseudo-label file on "
                        "the target train cache")
    parser.add_argument("--source", help="pairs: source: the mixed source cache (HDF5)")
    parser.add_argument("--translated", help="pairs: translated: the translated source cache (HDF5)")


def _needs(args: argparse.Namespace, flag: str, pairs: str, what: str) -> str:
    from ..errors import InputError

    value = getattr(args, flag)
    if not value:
        raise InputError(f"semantic_gan.pairs is {pairs}, which needs {what}, and no --{flag} was given",
                         fix=f"pass --{flag}, or choose another semantic_gan.pairs")
    return value


def gan_data(args: argparse.Namespace, section: dict, stack):
    """The :class:`~selfpanoptic.train.semantic_gan.GanData` of ``section['pairs']``, its caches opened in ``stack``.

    pseudo: target images, paired with ``--labels``; translated: target images, and the translated
    source's pairs; target_labels: target images, and the first ``target_labels`` of them with
    their ground truth; source: the source's images and pairs alone.
    """
    import numpy as np

    from ..errors import InputError
    from ..intermediates import DatasetCache, SemanticPrediction, SemanticPseudoLabels
    from ..train.semantic_gan import GanData

    pairs = section["pairs"]
    target = stack.enter_context(DatasetCache.open(args.target))
    everything = np.arange(len(target))
    if pairs == "source":
        source = stack.enter_context(DatasetCache.open(_needs(args, "source", pairs, "the source cache")))
        _same_size(source, target, args.source)
        indices = np.arange(len(source))
        return GanData(source, indices, source, indices, lambda i: source.read("labels", i))
    if pairs == "translated":
        translated = stack.enter_context(DatasetCache.open(_needs(args, "translated", pairs,
                                                                   "the translated source cache (mixing.translated > 0)")))
        _same_size(translated, target, args.translated)
        return GanData(target, everything, translated, np.arange(len(translated)),
                       lambda i: translated.read("labels", i))
    if pairs == "target_labels":
        count = section["target_labels"]
        if not target.labelled:
            raise InputError("semantic_gan.pairs is target_labels, but the target train split has no labels", args.target,
                             "choose semantic_gan.pairs: pseudo (a round's labels) or source")
        if count > len(target):
            raise InputError(f"semantic_gan.target_labels is {count}, but the target train split has {len(target)} images",
                             args.target, f"set semantic_gan.target_labels to at most {len(target)}")
        return GanData(target, everything, target, np.arange(count), lambda i: target.read("labels", i))
    kind = SemanticPrediction if section["labels"] == "prediction" else SemanticPseudoLabels
    labels = stack.enter_context(kind.open(_needs(args, "labels", pairs, f"the {section['labels_from']} label maps"),
                                           target.image_ids, target.path))
    if labels["labels"].shape[1:] != (target.height, target.width):
        raise InputError(f"its label maps are {labels['labels'].shape[1:]} pixels, the images "
                         f"{(target.height, target.width)}", args.labels,
                         "predict on the same cache at its working resolution (no --full-resolution)")
    return GanData(target, everything, target, everything, lambda i: labels["labels"][i])


def _same_size(cache, target, path) -> None:
    from ..errors import InputError

    if (cache.height, cache.width) != (target.height, target.width):
        raise InputError(f"its images are {cache.height}x{cache.width} pixels, the target's {target.height}x{target.width}",
                         path, "cache every dataset at the same working size (data.height, data.width)")
