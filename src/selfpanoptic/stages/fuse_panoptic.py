"""``selfpanoptic fuse-panoptic``: a run's official-format panoptic and instance predictions.

Predictions are made at the working resolution; the official evaluators compare against ground
truth at the dataset's own resolution. So the semantic labels and instance map of each image
are first brought to the ground truth's size (nearest neighbour), then instance masks are
cleaned (opening, closing, small-object removal), fused, and written:

- ``<out>/panoptic/<image_id>_panoptic.png`` and ``<out>/panoptic.json`` (Cityscapes panoptic
  format, the images and categories of the ground-truth JSON);
- ``<out>/instances/<image_id>.txt`` with one mask PNG per instance (Cityscapes instance format).

``<out>`` appears only when complete.
"""

from __future__ import annotations

import argparse

from .common import QUIET, progress, settings, settings_parent

HELP = "fuse a run's predictions into official Cityscapes panoptic and instance files"
PARENTS = [settings_parent("panoptic"), QUIET]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--semantic", required=True, help="semantic prediction HDF5")
    parser.add_argument("--instance", required=True, help="instance prediction HDF5 of the same images")
    parser.add_argument("--gt-json-file", required=True, help="panoptic ground-truth JSON (its images and sizes are used)")
    parser.add_argument("--out", required=True, help="output folder (panoptic/, panoptic.json, instances/)")


def run(args: argparse.Namespace) -> None:
    import json
    from pathlib import Path

    import numpy as np
    from tqdm import tqdm

    from ..atomic import atomic_output
    from ..errors import InputError
    from ..formats.instance_files import write_instance_prediction
    from ..formats.panoptic_png import write_panoptic_prediction
    from ..fusion import clean_instance_masks, fuse_panoptic, resize_nearest
    from ..intermediates import InstancePrediction, SemanticPrediction

    section = settings(args, "panoptic")
    gt_json_file = Path(args.gt_json_file)
    if not gt_json_file.is_file():
        raise InputError("panoptic ground-truth JSON does not exist", gt_json_file,
                         "create it with cityscapesscripts' createPanopticImgs (the toy generator does)")
    gt = json.loads(gt_json_file.read_text())
    sizes = {img["id"]: (img["height"], img["width"]) for img in gt["images"]}
    morphology = section["morphology"]
    with SemanticPrediction.open(args.semantic) as sem, \
            InstancePrediction.open(args.instance, sem.image_ids, args.semantic) as inst, \
            atomic_output(args.out) as tmp:
        missing = sorted(set(sizes) - set(sem.image_ids))
        if missing:
            raise InputError(f"{len(missing)} ground-truth image(s) have no prediction, e.g. {missing[0]}",
                             args.semantic, "predict on the same split as the ground-truth JSON")
        (tmp / "panoptic").mkdir(parents=True)
        (tmp / "instances").mkdir()
        annotations = []
        for i, image_id in enumerate(tqdm(sem.image_ids, desc="fuse panoptic", disable=not progress(args))):
            if image_id not in sizes:
                continue
            height, width = sizes[image_id]
            semantic = resize_nearest(sem["labels"][i], height, width)
            instances = resize_nearest(inst["instances"][i], height, width)
            if morphology["enabled"]:
                instances = clean_instance_masks(
                    instances, morphology["opening_radius"], morphology["closing_radius"], morphology["min_size"]
                )
            classes, scores = inst.segments(i)
            kept = {k: classes[k] for k in np.unique(instances) if k in classes}
            panoptic_ids, panoptic_segments = fuse_panoptic(semantic, instances, section["stuff_min_area"])
            annotations.append(write_panoptic_prediction(tmp / "panoptic", image_id, panoptic_ids, panoptic_segments))
            write_instance_prediction(tmp / "instances", image_id, instances, kept, {k: scores[k] for k in kept})
        prediction = {"images": gt["images"], "annotations": annotations, "categories": gt["categories"]}
        (tmp / "panoptic.json").write_text(json.dumps(prediction))
    print(f"panoptic and instance predictions -> {args.out}")
