"""``selfpanoptic predict-semantic``: a semantic model's labels and confidence on every image of a cache.

At the cache's working resolution by default (what pseudo-labelling and guidance read); with
``--full-resolution MANIFEST`` at the size of the split's own files, class probabilities being
upsampled bilinearly before the argmax, so that the evaluation scores the model at the ground
truth's resolution as the official scripts do, not labels enlarged by nearest sampling.
"""

from __future__ import annotations

import argparse

from ._full_resolution import add_full_resolution, output_size
from .common import COMPUTE, check_inference_scales, progress, settings, settings_parent, torch_setup

HELP = "semantic labels and confidence of every image of a cache"
PARENTS = [settings_parent("inference"), *COMPUTE]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="semantic model file")
    parser.add_argument("--data", required=True, help="dataset cache (HDF5)")
    add_full_resolution(parser)
    parser.add_argument("--out", required=True, help="prediction HDF5 to write")


def run(args: argparse.Namespace, batch_size: int = 8) -> None:
    import numpy as np
    from tqdm import tqdm

    from ..inference import batches, predict_semantic_batch
    from ..intermediates import DatasetCache, SemanticPrediction
    from ..models import load_model_file, model_from_saved
    from ..settings import InferenceSettings

    device = torch_setup(args)
    inference = settings(args, "inference")
    passes = InferenceSettings.from_config(inference)
    saved = load_model_file(args.model, "semantic")
    model = model_from_saved(saved, args.model).to(device)
    inputs = [args.model, args.data] + ([args.full_resolution] if args.full_resolution else [])
    config = {"model": str(args.model), "inference": inference}
    with DatasetCache.open(args.data) as cache:
        check_inference_scales(args, inference["scales"], (cache.height, cache.width), f"the cache {args.data}",
                               saved["spec"], False,
                               "cache the images at a larger working size (data.height, data.width)")
        size = output_size(args, cache)
        with SemanticPrediction.create(args.out, cache.image_ids, size, config, inputs) as h5:
            for idx in tqdm(list(batches(len(cache), batch_size)), desc="predict semantic", disable=not progress(args)):
                images = np.stack([cache.read("images", i) for i in idx])
                labels, confidence = predict_semantic_batch(model, images, device, passes, size)
                h5["labels"][idx.start : idx.stop] = labels
                h5["confidence"][idx.start : idx.stop] = confidence
