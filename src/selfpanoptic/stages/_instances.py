"""What the instance stages share: load the group models, cluster predictions, run, write the file.

``predict-instance``, ``pseudo-instance`` and ``predict-panoptic`` load the group models with
:func:`load_instance_groups`; the two predicting stages cluster with :func:`prediction_clustering`.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Sequence

from .common import check_inference_scales, progress


def add_instance_io(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--models", nargs="+", required=True, help="instance model files (one per class group)")
    parser.add_argument("--semantic", required=True, help="semantic prediction HDF5 of the same images")
    parser.add_argument("--data", required=True, help="dataset cache (HDF5)")
    parser.add_argument("--out", required=True, help="HDF5 file to write")


def load_instance_groups(paths: Sequence[str | Path], device) -> list[tuple[Any, list[int]]]:
    """The instance models of ``paths`` (one per class group) on ``device``, with their thing trainIds.

    Parameters
    ----------
    paths : sequence of str or pathlib.Path
        Instance model files.
    device : torch.device
        Where the models run.

    Returns
    -------
    list of (torch.nn.Module, list of int)
        ``(model in eval mode, the trainIds of its classes)`` per file, in the order given: the
        ``groups`` of :func:`selfpanoptic.inference.image_instances`.

    Raises
    ------
    InputError
        When a file is not an instance model, or a class belongs to two of the models (the
        merged instance map must not hold one class twice).
    """
    from ..classes import class_id
    from ..errors import InputError
    from ..models import load_model_file, model_from_file

    groups, owner = [], {}
    for path in paths:
        saved = load_model_file(path, "instance")
        for name in saved["classes"]:
            if name in owner:  # merged predictions must not hold one class twice
                raise InputError(f"class {name!r} is predicted by this model and by {owner[name]}", path,
                                 "give one model per class group, each class in one group")
            owner[name] = path
        groups.append((model_from_file(path, "instance").to(device), [class_id(c) for c in saved["classes"]]))
    return groups


def prediction_clustering(section: dict[str, Any], device, area_ratio: float = 1.0):
    """How predicted embeddings become instances: mean-shift with the ``instance`` section's margins.

    Parameters
    ----------
    section : dict
        The validated ``instance`` config section: ``loss.delta_v`` is the bandwidth,
        ``loss.delta_d`` the merge distance, ``clustering.min_size`` the smallest instance in
        pixels at the working resolution.
    device : torch.device
        Where the clustering runs.
    area_ratio : float
        Output pixels per working-resolution pixel (``H_out * W_out / (height * width)``):
        ``min_size`` is scaled by it, so the same objects are kept at either resolution.

    Returns
    -------
    callable
        A :data:`selfpanoptic.inference.Cluster` for a whole batch.
    """
    from ..clustering import instances_from_embeddings_batch
    from ..settings import ClusteringSettings

    clustering = ClusteringSettings.from_config(section)
    min_size = round(clustering.min_size * area_ratio)

    def cluster(embeddings, semantic, confidence, classes):  # a batch of images at once
        return instances_from_embeddings_batch(embeddings, semantic, thing_classes=classes,
                                               bandwidth=clustering.bandwidth, delta_d=clustering.delta_d,
                                               min_size=min_size, device=device)

    return cluster


def write_instances(args: argparse.Namespace, kind, make_cluster, config: dict[str, Any], inference: dict[str, Any],
                    device, batch_size: int = 8, groups: list | None = None) -> None:
    """Cluster every image of ``args.data`` and write ``args.out`` as the intermediate class ``kind``.

    ``make_cluster(area_ratio)``: how embeddings become instances (a
    :data:`selfpanoptic.inference.Cluster`), given the output pixels per cache pixel;
    ``config``: the sections recorded as provenance, ``inference`` added; ``inference``: how the
    embedding models run (the ``inference`` section). The instances are made at the resolution
    of the semantic prediction ``args.semantic``: when it is finer than the cache (a
    full-resolution prediction), the embeddings are upsampled bilinearly to it before clustering.
    ``groups``: the models of ``args.models`` already loaded (:func:`load_instance_groups`), or None.
    """
    import numpy as np
    from tqdm import tqdm

    from ..inference import batches, image_instances
    from ..intermediates import DatasetCache, SemanticPrediction
    from ..settings import InferenceSettings

    groups = load_instance_groups(args.models, device) if groups is None else groups
    passes = InferenceSettings.from_config(inference)
    inputs = [*map(str, args.models), args.semantic, args.data]
    with DatasetCache.open(args.data) as cache, \
            SemanticPrediction.open(args.semantic, cache.image_ids, args.data) as sem, \
            kind.create(args.out, cache.image_ids, sem["labels"].shape[1:], {**config, "inference": inference},
                        inputs) as h5:
        check_inference_scales(args, inference["scales"], (cache.height, cache.width), f"the cache {args.data}", None,
                               True, "cache the images at a larger working size (data.height, data.width)")
        out_height, out_width = sem["labels"].shape[1:]
        cluster = make_cluster(out_height * out_width / (cache.height * cache.width))
        rows, scores = [], []
        for idx in tqdm(list(batches(len(cache), batch_size)), desc=kind.KIND, disable=not progress(args)):
            images = np.stack([cache.read("images", i) for i in idx])
            found = image_instances(groups, images, sem["labels"][idx.start:idx.stop],
                                    sem["confidence"][idx.start:idx.stop], cluster, device, passes,
                                    sem["labels"].shape[1:])
            for i, (instances, image_rows, image_scores) in zip(idx, found):
                h5["instances"][i] = instances
                rows += [(i, *row) for row in image_rows]
                scores += image_scores
        kind.write_segments(h5, rows, scores)


def round_objectness(section: dict[str, Any], loss: dict[str, Any], model, source_path: str | None,
                     classes: list[int], device):
    """``(classifier, summary)`` of a round's pseudo instances of one group when
    ``selftrain.instance.objectness`` is enabled (:func:`selfpanoptic.pseudo.masks.fit_objectness`
    on the source cache ``source_path`` with ``model``), else ``(None, None)``.

    ``section``: ``selftrain.instance``; ``loss``: ``instance.loss`` (``delta_v``, ``delta_d``).
    """
    settings = section["objectness"]
    if not settings["enabled"]:
        return None, None
    import sys

    from ..errors import InputError
    from ..intermediates import DatasetCache
    from ..pseudo.masks import fit_objectness

    if not source_path:
        raise InputError("selftrain.instance.objectness is enabled: it is fitted on the labelled source, "
                         "but no source cache was given", fix="pass --source CACHE, or disable objectness")
    with DatasetCache.open(source_path) as source:
        try:
            objectness, summary = fit_objectness(model, source, classes, loss["delta_v"], loss["delta_d"],
                                                 section["min_size"], settings["source_images"], settings["l2"], device)
        except ValueError as exc:  # nothing to learn from: keep every pseudo instance, and say so
            print(f"warning: no objectness classifier for classes {classes} ({exc}); pseudo instances are not "
                  "filtered by objectness", file=sys.stderr)
            return None, {"examples": 0}
    print(f"objectness classifier of {len(classes)} classes: {summary}")
    return objectness, summary
