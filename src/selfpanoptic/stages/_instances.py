"""What ``predict-instance`` and ``pseudo-instance`` share: load group models, run, write the file."""

from __future__ import annotations

import argparse
from typing import Any

from .common import progress


def add_instance_io(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--models", nargs="+", required=True, help="instance model files (one per class group)")
    parser.add_argument("--semantic", required=True, help="semantic prediction HDF5 of the same images")
    parser.add_argument("--data", required=True, help="dataset cache (HDF5)")
    parser.add_argument("--out", required=True, help="HDF5 file to write")


def write_instances(args: argparse.Namespace, kind, cluster, config: dict[str, Any], inference: dict[str, Any],
                    device, batch_size: int = 8) -> None:
    """Cluster every image of ``args.data`` and write ``args.out`` as the intermediate class ``kind``.

    ``cluster``: how embeddings become instances (:data:`selfpanoptic.inference.Cluster`);
    ``config``: the sections recorded as provenance, ``inference`` added; ``inference``: how the
    embedding models run (the ``inference`` section). The instances are made at the resolution
    of the semantic prediction ``args.semantic``: when it is finer than the cache (a
    full-resolution prediction), the embeddings are upsampled bilinearly to it before clustering.
    """
    import numpy as np
    from tqdm import tqdm

    from ..classes import class_id
    from ..errors import InputError
    from ..inference import batches, image_instances
    from ..intermediates import DatasetCache, SemanticPrediction
    from ..models import load_model_file, model_from_file

    groups, owner = [], {}
    for path in args.models:
        saved = load_model_file(path, "instance")
        for name in saved["classes"]:
            if name in owner:  # merged predictions must not hold one class twice
                raise InputError(f"class {name!r} is predicted by this model and by {owner[name]}", path,
                                 "give one model per class group, each class in one group")
            owner[name] = path
        groups.append((model_from_file(path, "instance").to(device), [class_id(c) for c in saved["classes"]]))
    inputs = [*map(str, args.models), args.semantic, args.data]
    with DatasetCache.open(args.data) as cache, \
            SemanticPrediction.open(args.semantic, cache.image_ids, args.data) as sem, \
            kind.create(args.out, cache.image_ids, sem["labels"].shape[1:], {**config, "inference": inference},
                        inputs) as h5:
        rows, scores = [], []
        for idx in tqdm(list(batches(len(cache), batch_size)), desc=kind.KIND, disable=not progress(args)):
            images = np.stack([cache.read("images", i) for i in idx])
            found = image_instances(groups, images, sem["labels"][idx.start:idx.stop],
                                    sem["confidence"][idx.start:idx.stop], cluster, device, inference,
                                    sem["labels"].shape[1:])
            for i, (instances, image_rows, image_scores) in zip(idx, found):
                h5["instances"][i] = instances
                rows += [(i, *row) for row in image_rows]
                scores += image_scores
        kind.write_segments(h5, rows, scores)
