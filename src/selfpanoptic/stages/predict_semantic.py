"""``selfpanoptic predict-semantic``: a semantic model's labels and confidence on every image of a cache."""

from __future__ import annotations

import argparse

from .common import COMPUTE, progress, settings, settings_parent, torch_setup

HELP = "semantic labels and confidence of every image of a cache"
PARENTS = [settings_parent("inference"), *COMPUTE]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="semantic model file")
    parser.add_argument("--data", required=True, help="dataset cache (HDF5)")
    parser.add_argument("--out", required=True, help="prediction HDF5 to write")


def run(args: argparse.Namespace, batch_size: int = 8) -> None:
    import numpy as np
    from tqdm import tqdm

    from ..inference import batches, predict_semantic_batch
    from ..intermediates import DatasetCache, SemanticPrediction
    from ..models import model_from_file

    device = torch_setup(args)
    inference = settings(args, "inference")
    model = model_from_file(args.model, "semantic").to(device)
    config = {"model": str(args.model), "inference": inference}
    with DatasetCache.open(args.data) as cache, SemanticPrediction.create(
        args.out, cache.image_ids, (cache.height, cache.width), config, [args.model, args.data]
    ) as h5:
        for idx in tqdm(list(batches(len(cache), batch_size)), desc="predict semantic", disable=not progress(args)):
            labels, confidence = predict_semantic_batch(model, np.stack([cache.read("images", i) for i in idx]), device,
                                                        inference)
            h5["labels"][idx.start : idx.stop] = labels
            h5["confidence"][idx.start : idx.stop] = confidence
