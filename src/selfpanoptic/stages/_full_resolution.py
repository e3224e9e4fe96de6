"""What the stages that predict or score at the ground truth's resolution share."""

from __future__ import annotations

import argparse


def add_full_resolution(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--full-resolution", metavar="MANIFEST",
        help="index manifest CSV of the same images: write the prediction at the size of their files "
             "(the ground truth's), upsampling class scores bilinearly before the argmax; "
             "default: the cache's working resolution",
    )


def output_size(args: argparse.Namespace, cache) -> tuple[int, int]:
    """``(height, width)`` a prediction is written at: the cache's, or ``--full-resolution``'s files'.

    Raises :class:`~selfpanoptic.errors.InputError` when the manifest lists other images than the
    cache, or images of several sizes.
    """
    from ..data.ground_truth import uniform_size
    from ..data.manifest import read_manifest
    from ..errors import InputError

    if not args.full_resolution:
        return cache.height, cache.width
    manifest = read_manifest(args.full_resolution)
    if manifest["image_id"].astype(str).tolist() != list(cache.image_ids):
        raise InputError("the manifest does not list the same images as the cache", args.full_resolution,
                         "give the index manifest the cache was built from")
    return uniform_size(manifest, args.full_resolution)


def check_prediction_size(prediction, stack: str, gt) -> None:
    """Refuse a prediction whose ``stack`` is not at the ground truth's size (one clear message)."""
    from ..errors import InputError

    height, width = prediction[stack].shape[1:3]
    if (height, width) != gt.size:
        raise InputError(
            f"the prediction is {width}x{height} but the ground truth is {gt.size[1]}x{gt.size[0]}",
            prediction.path, "predict at the ground truth's resolution (predict-semantic --full-resolution)",
        )
