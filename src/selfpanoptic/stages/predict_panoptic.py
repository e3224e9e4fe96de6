"""``selfpanoptic predict-panoptic``: a trained run's predictions on any folder of images.

``--run`` (``results/round2``: ``semantic/model.pt``, any ``instance/<group>/model.pt``) predicts every
image below ``--images`` (ids: :mod:`selfpanoptic.data.images`) at its own size, fused as ``fuse-panoptic``
does (:mod:`selfpanoptic.panoptic`), into ``--out`` (:mod:`selfpanoptic.folder_prediction`), complete or absent.
"""

from __future__ import annotations

import argparse

from .common import COMPUTE, progress, settings, settings_parent, torch_setup

HELP = "a trained run's semantic, instance and panoptic predictions on a folder of images"
PARENTS = [settings_parent("data", "inference", "instance", "panoptic"), *COMPUTE]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run", required=True, metavar="DIR",
                        help="run folder holding semantic/model.pt and instance/<group>/model.pt (results/round2)")
    parser.add_argument("--images", required=True, metavar="DIR",
                        help="folder of images (*.png, *.jpg, *.jpeg, searched recursively)")
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="output folder (semantic/, instance/, panoptic/, panoptic.json, overlays/)")


def run(args: argparse.Namespace) -> None:
    from pathlib import Path

    from ..atomic import atomic_output
    from ..data.images import image_folder
    from ..errors import InputError
    from ..folder_prediction import image_entries, predict_image_folder
    from ..models import model_from_file
    from ..panoptic import Predictor
    from ..settings import FusionSettings, InferenceSettings
    from ._instances import load_instance_groups, prediction_clustering

    data, instance, inference = settings(args, "data"), settings(args, "instance"), settings(args, "inference")
    fusion, run_dir = FusionSettings.from_config(settings(args, "panoptic")), Path(args.run)
    if not run_dir.is_dir():
        raise InputError("run folder does not exist", run_dir,
                         "give a folder the workflow trained, e.g. results/round2 (semantic/model.pt inside)")
    images = image_folder(args.images, exclude=args.out)
    entries = image_entries(images)  # an unreadable image stops the command before any model work
    device = torch_setup(args)
    predictor = Predictor(model_from_file(run_dir / "semantic" / "model.pt", "semantic").to(device),
                          load_instance_groups(sorted(run_dir.glob("instance/*/model.pt")), device),
                          (data["height"], data["width"]), device, InferenceSettings.from_config(inference),
                          lambda area_ratio: prediction_clustering(instance, device, area_ratio))
    if not predictor.groups:
        print(f"{run_dir}: no instance models (instance/<group>/model.pt): semantic predictions only", flush=True)
    with atomic_output(args.out) as out:
        out.mkdir()
        found = predict_image_folder(images, Path(args.images), entries, out, predictor, fusion, progress(args))
    what, folders = ("semantic only", "semantic/, overlays/") if found is None else \
        (f"{found} instances", "semantic/, instance/, panoptic/, panoptic.json, overlays/")
    print(f"predict-panoptic: {len(images)} images, {what}, predictions -> {args.out} ({folders})")
