"""``selfpanoptic fuse-panoptic``: official-format panoptic and instance predictions of a run.

Predictions are made at the working resolution; the official evaluators compare against ground
truth at the dataset's own resolution. So the semantic labels and instance map of each image
are first brought to the ground truth's size (nearest neighbour), then instance masks are
cleaned (opening, closing, small-object removal), fused, and written:

- ``<out>/panoptic/<image_id>_panoptic.png`` and ``<out>/panoptic.json`` (Cityscapes panoptic
  format, the images and categories of the ground-truth JSON);
- ``<out>/instances/<image_id>.txt`` with one mask PNG per instance (Cityscapes instance format).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from tqdm import tqdm

from .atomic import atomic_output
from .errors import InputError
from .fusion import clean_instance_masks, fuse_panoptic, write_instance_prediction, write_panoptic_prediction
from .h5io import open_intermediate


def resize_nearest(array: np.ndarray, height: int, width: int) -> np.ndarray:
    """Nearest-neighbour resize of an integer map (H, W) to (height, width), dtype kept."""
    if array.shape == (height, width):
        return array
    image = Image.fromarray(array.astype(np.int32), mode="I")
    return np.asarray(image.resize((width, height), Image.NEAREST)).astype(array.dtype)


def write_panoptic_outputs(
    semantic_path: str | Path, instance_path: str | Path, gt_json_file: str | Path, out: str | Path,
    settings: dict[str, Any], progress: bool = True,
) -> None:
    """Fuse a run's semantic and instance predictions into the official formats under ``out``.

    ``settings`` is the config's ``panoptic`` section. ``out`` appears only when complete.
    """
    gt_json_file = Path(gt_json_file)
    if not gt_json_file.is_file():
        raise InputError("panoptic ground-truth JSON does not exist", gt_json_file,
                         "create it with cityscapesscripts' createPanopticImgs (the toy generator does)")
    gt = json.loads(gt_json_file.read_text())
    sizes = {img["id"]: (img["height"], img["width"]) for img in gt["images"]}
    morphology = settings["morphology"]
    with open_intermediate(semantic_path) as sem, open_intermediate(instance_path) as inst, atomic_output(out) as tmp:
        ids = list(sem["image_ids"].asstr()[()])
        missing = sorted(set(sizes) - set(ids))
        if missing:
            raise InputError(f"{len(missing)} ground-truth image(s) have no prediction, e.g. {missing[0]}",
                             semantic_path, "predict on the same split as the ground-truth JSON")
        segments = inst["segments"][()]
        scores = inst["segment_scores"][()]
        (tmp / "panoptic").mkdir(parents=True)
        (tmp / "instances").mkdir()
        annotations = []
        for i, image_id in enumerate(tqdm(ids, desc="fuse panoptic", disable=not progress)):
            if image_id not in sizes:
                continue
            height, width = sizes[image_id]
            semantic = resize_nearest(sem["labels"][i], height, width)
            instances = resize_nearest(inst["instances"][i], height, width)
            if morphology["enabled"]:
                instances = clean_instance_masks(
                    instances, morphology["opening_radius"], morphology["closing_radius"], morphology["min_size"]
                )
            mine = segments[:, 0] == i
            classes = {int(s[1]): int(s[2]) for s in segments[mine]}
            conf = {int(s[1]): float(v) for s, v in zip(segments[mine], scores[mine])}
            kept = {k: classes[k] for k in np.unique(instances) if k in classes}
            panoptic_ids, panoptic_segments = fuse_panoptic(semantic, instances, settings["stuff_min_area"])
            annotations.append(write_panoptic_prediction(tmp / "panoptic", image_id, panoptic_ids, panoptic_segments))
            write_instance_prediction(tmp / "instances", image_id, instances, kept, {k: conf[k] for k in kept})
        prediction = {"images": gt["images"], "annotations": annotations, "categories": gt["categories"]}
        (tmp / "panoptic.json").write_text(json.dumps(prediction))
