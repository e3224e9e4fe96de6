"""``selfpanoptic predict-panoptic``: a trained run's predictions on any folder of images.

``--run`` (``results/round2``: ``semantic/model.pt``, any ``instance/<group>/model.pt``) predicts every
image below ``--images`` (ids: :mod:`selfpanoptic.data.images`) at its own size, fused as ``fuse-panoptic``
does (:mod:`selfpanoptic.panoptic`), into ``--out`` (:mod:`selfpanoptic.folder_prediction`), complete or absent.
The models see each image resized to the working size they were trained at, which their files
record; ``--config`` or ``--data-settings`` choose another (``data.height``, ``data.width``), and
``inference.scales`` that shrink it below the run's models' output stride are refused before any work.
``--out`` is a new folder, an empty one, or one this command wrote before (replaced whole): a
folder holding anything else, or holding an input, is refused before any work.
"""

from __future__ import annotations

import argparse

from .common import COMPUTE, check_inference_scales, progress, settings, settings_parent, torch_setup

HELP = "a trained run's semantic, instance and panoptic predictions on a folder of images"
PARENTS = [settings_parent("data", "inference", "instance", "panoptic"), *COMPUTE]
FOLDER_OUTPUTS = ("out",)


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
    from ..folder_prediction import check_image_links, image_entries, predict_image_folder
    from ..models import load_model_file, model_from_file
    from ..panoptic import Predictor
    from ..settings import FusionSettings, InferenceSettings
    from ._instances import load_instance_groups, prediction_clustering

    instance, inference = settings(args, "instance"), settings(args, "inference")
    fusion, run_dir = FusionSettings.from_config(settings(args, "panoptic")), Path(args.run)
    semantic = _semantic_model_file(run_dir)
    saved, instance_files = load_model_file(semantic, "semantic"), sorted(run_dir.glob("instance/*/model.pt"))
    size, size_from = _working_size(args, semantic, saved)
    check_inference_scales(args, inference["scales"], size, size_from, saved["spec"], bool(instance_files),
                           "predict at a larger working size (--data-settings '{\"height\": H, \"width\": W}')")
    check_image_links(args.images, exclude=args.out)
    images = image_folder(args.images, exclude=args.out)
    entries = image_entries(images)  # an unreadable image stops the command before any model work
    device = torch_setup(args)
    predictor = Predictor(model_from_file(semantic, "semantic").to(device),
                          load_instance_groups(instance_files, device),
                          size, device, InferenceSettings.from_config(inference),
                          lambda area_ratio: prediction_clustering(instance, device, area_ratio))
    if not predictor.groups:
        print(f"{run_dir}: no instance models (instance/<group>/model.pt): semantic predictions only", flush=True)
    with atomic_output(args.out) as out:
        out.mkdir()
        found = predict_image_folder(images, Path(args.images), entries, out, predictor, fusion, progress(args))
    what, folders = ("semantic only", "semantic/, overlays/") if found is None else \
        (f"{found} instances", "semantic/, instance/, panoptic/, panoptic.json, overlays/")
    print(f"predict-panoptic: {len(images)} images at {size[0]}x{size[1]}, {what}, predictions -> {args.out} ({folders})")


def _semantic_model_file(run_dir):
    """``<run>/semantic/model.pt``, or an error that says which folder to give instead."""
    from ..errors import InputError

    model = run_dir / "semantic" / "model.pt"
    if model.is_file():
        return model
    if run_dir.is_file():
        run = next((p for p in run_dir.parents if (p / "semantic" / "model.pt").is_file()), None)
        raise InputError("--run is a file, but it must be a run folder (semantic/model.pt inside)", run_dir,
                         f"give its run folder: --run {run}" if run else
                         "give the run folder the workflow trained, e.g. results/round2")
    if not run_dir.is_dir():
        raise InputError("run folder does not exist", run_dir,
                         "give a folder the workflow trained, e.g. results/round2 (semantic/model.pt inside)")
    runs = sorted(p.parent.parent.relative_to(run_dir) for p in run_dir.glob("*/semantic/model.pt"))
    if runs:
        raise InputError(f"is a folder of runs ({', '.join(map(str, runs[:4]))}), not a run", run_dir,
                         f"give one of its runs, e.g. --run {run_dir / runs[-1]}")
    raise InputError("holds no semantic/model.pt, so it is not a trained run", run_dir,
                     "give a run folder the workflow trained, e.g. results/round2; train it first with "
                     "`snakemake --cores all`")


def _working_size(args: argparse.Namespace, semantic, saved) -> tuple[tuple[int, int], str]:
    """(height, width) the images are resized to, and where it comes from: ``data`` from
    ``--data-settings``/``--config`` when given, else the size the semantic model was trained at
    (``saved``, its file's contents, records it)."""
    if args.data_settings or args.config:
        data = settings(args, "data")
        return (data["height"], data["width"]), "data.height x data.width"
    recorded = saved.get("working_size")
    if recorded is not None:
        return (int(recorded[0]), int(recorded[1])), f"recorded in {semantic}"
    data = settings(args, "data")
    print(f"{semantic}: the model file records no working size; predicting at the default "
          f"{data['height']}x{data['width']} (pass --config with the run's config to choose)", flush=True)
    return (data["height"], data["width"]), "the default data.height x data.width"
