"""``selfpanoptic fuse-panoptic``: a run's official-format panoptic predictions.

The semantic and instance predictions must be at the ground truth's resolution (made from
upsampled scores: ``predict-semantic --full-resolution``, then ``predict-instance``). Instance
masks are cleaned (opening, closing, small-object removal), fused with the semantic labels, and
written as ``<out>/panoptic/<image_id>_panoptic.png`` and ``<out>/panoptic.json`` (Cityscapes
panoptic format, the images and categories of the ground-truth JSON), by the steps
``predict-panoptic`` runs too (:mod:`selfpanoptic.panoptic`). ``<out>`` appears only when
complete. The instance prediction itself is exported by ``export-instance``.
"""

from __future__ import annotations

import argparse

from .common import QUIET, progress, settings, settings_parent

HELP = "fuse a run's predictions into official Cityscapes panoptic and instance files"
PARENTS = [settings_parent("panoptic"), QUIET]
FOLDER_OUTPUTS = ("out",)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--semantic", required=True, help="semantic prediction HDF5")
    parser.add_argument("--instance", required=True, help="instance prediction HDF5 of the same images")
    parser.add_argument("--gt-json-file", required=True, help="panoptic ground-truth JSON (its images and sizes are used)")
    parser.add_argument("--out", required=True, help="output folder (panoptic/, panoptic.json)")


def run(args: argparse.Namespace) -> None:
    import json
    from pathlib import Path

    from tqdm import tqdm

    from ..atomic import atomic_output
    from ..errors import InputError
    from ..intermediates import InstancePrediction, SemanticPrediction
    from ..panoptic import fuse, write_panoptic_files
    from ..settings import FusionSettings

    fusion = FusionSettings.from_config(settings(args, "panoptic"))
    gt_json_file = Path(args.gt_json_file)
    if not gt_json_file.is_file():
        raise InputError("panoptic ground-truth JSON does not exist", gt_json_file,
                         "create it with cityscapesscripts' createPanopticImgs (the toy generator does)")
    gt = json.loads(gt_json_file.read_text())
    sizes = {img["id"]: (img["height"], img["width"]) for img in gt["images"]}
    with SemanticPrediction.open(args.semantic) as sem, \
            InstancePrediction.open(args.instance, sem.image_ids, args.semantic) as inst, \
            atomic_output(args.out) as tmp:
        missing = sorted(set(sizes) - set(sem.image_ids))
        if missing:
            raise InputError(f"{len(missing)} ground-truth image(s) have no prediction, e.g. {missing[0]}",
                             args.semantic, "predict on the same split as the ground-truth JSON")

        def fused():  # image by image: one image's maps in memory at a time
            for i, image_id in enumerate(tqdm(sem.image_ids, desc="fuse panoptic", disable=not progress(args))):
                if image_id not in sizes:
                    continue
                semantic, instances = sem["labels"][i], inst["instances"][i]
                if semantic.shape != sizes[image_id] or instances.shape != sizes[image_id]:
                    height, width = sizes[image_id]
                    raise InputError(
                        f"image {image_id}: the predictions are {semantic.shape[1]}x{semantic.shape[0]} (semantic) "
                        f"and {instances.shape[1]}x{instances.shape[0]} (instance), the ground truth {width}x{height}",
                        args.semantic, "predict at the ground truth's resolution (predict-semantic --full-resolution)")
                yield image_id, *fuse(semantic, instances, fusion)

        write_panoptic_files(tmp, fused(), gt["images"], gt["categories"])
    print(f"panoptic predictions -> {args.out}")
