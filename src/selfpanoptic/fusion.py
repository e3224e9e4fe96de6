"""Panoptic fusion of a semantic and an instance prediction, and the official Cityscapes outputs.

The fusion follows Panoptic-DeepLab: every instance takes the majority semantic class of its
pixels, instances whose class is not a thing class are dropped, stuff keeps the semantic
prediction (one segment per stuff class and image), everything else is void.

Panoptic ids use the official Cityscapes encoding (what ``createPanopticImgs`` produces from
``*_instanceIds.png``), **not** ``class * divisor + k``, which would give road (trainId 0)
the void id 0:

* ``0`` is void;
* a stuff segment has id = its Cityscapes labelId (road = 7, sky = 23);
* a thing instance has id = labelId * 1000 + k, k = 0, 1, ... per class (first car = 26000).

Writers produce the formats read by ``cityscapesscripts``:

* panoptic (``evalPanopticSemanticLabeling``): ``<image_id>_panoptic.png`` (RGB,
  id = R + 256 G + 256^2 B) plus a COCO-panoptic JSON (:func:`write_panoptic_prediction`,
  :func:`panoptic_json`);
* instances (``evalInstanceLevelSemanticLabeling``): ``<image_id>.txt`` listing
  ``masks/<mask>.png <labelId> <confidence>`` per instance (:func:`write_instance_prediction`).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np
from PIL import Image
from scipy import ndimage
from skimage.morphology import closing, disk, opening

from .atomic import atomic_output, atomic_write_text
from .classes import IGNORE, NUM_CLASSES, STUFF_TRAIN_IDS, THING_TRAIN_IDS, TRAIN_ID_TO_LABEL_ID
from .panoptic_format import ids_to_rgb, rgb_to_ids
from .segments import instance_majority_classes

__all__ = [
    "LABEL_DIVISOR",
    "MASK_FOLDER",
    "VOID_ID",
    "clean_instance_masks",
    "cityscapes_categories",
    "fuse_panoptic",
    "ids_to_rgb",
    "panoptic_json",
    "rgb_to_ids",
    "write_instance_prediction",
    "write_panoptic_prediction",
]

VOID_ID = 0
"""Panoptic id of void pixels (unlabelled in both the PNG and the JSON)."""

LABEL_DIVISOR = 1000
"""Thing instance ids are ``labelId * LABEL_DIVISOR + k`` (Cityscapes instanceIds convention)."""

_OFFICIAL_SEGMENT_KEYS = ("id", "category_id", "area", "bbox", "iscrowd")
_IS_THING = np.zeros(256, dtype=bool)
_IS_THING[list(THING_TRAIN_IDS)] = True
_IS_STUFF = np.zeros(256, dtype=bool)
_IS_STUFF[list(STUFF_TRAIN_IDS)] = True


# ---------------------------------------------------------------------------------------------
# Instance mask post-processing
# ---------------------------------------------------------------------------------------------


def _morph(operation, mask: np.ndarray, radius: int) -> np.ndarray:
    footprint = disk(radius)
    try:
        # 'ignore': pixels outside the array influence neither the erosion nor the dilation
        return operation(mask, footprint, mode="ignore")
    except TypeError:  # scikit-image < 0.23 has no mode argument
        return operation(mask, footprint)


def _clean_mask(mask: np.ndarray, opening_radius: int, closing_radius: int) -> np.ndarray:
    """Opening then closing of one binary mask (a crop with a margin around the instance)."""
    if opening_radius > 0:
        # the image border does not erode the instance: outside pixels are ignored
        mask = _morph(opening, mask, opening_radius)
    if closing_radius > 0:
        # zero padding: the dilation may spill past the image border and the erosion brings it
        # back, but a gap between the instance and the border is not filled
        r = closing_radius
        mask = _morph(closing, np.pad(mask, r), r)[r:-r, r:-r]
    return mask


def clean_instance_masks(
    instances: np.ndarray, opening_radius: int = 1, closing_radius: int = 1, min_size: int = 4
) -> np.ndarray:
    """Morphologically clean every instance mask of an instance map.

    Each instance (id > 0) is processed on its own, on a crop of its bounding box enlarged by
    ``max(opening_radius, closing_radius) + 1`` pixels: a binary opening with
    ``disk(opening_radius)`` (removes spurs and specks thinner than the disk), then a binary
    closing with ``disk(closing_radius)`` (fills small holes and cracks). A radius of 0 skips
    that step. The image border neither erodes an instance that touches it (the opening
    ignores pixels outside the image, scikit-image's ``mode="ignore"``) nor pulls in one that
    comes close to it (the closing pads the image with background).

    Overlaps after closing are resolved so that instances stay disjoint: a pixel claimed by
    several cleaned masks goes to the instance that owned it in the input if that instance
    still claims it, otherwise to the claimant with the largest cleaned mask (ties: smaller
    id). Finally instances with fewer than ``min_size`` pixels are removed (set to 0; their
    pixels are not handed to a neighbour). Ids are kept; removed ids simply vanish.

    Returns a new int32 map of the same shape.
    """
    instances = np.asarray(instances)
    if instances.ndim != 2:
        raise ValueError(f"instances must be a 2-D map, got shape {instances.shape}")
    if not np.issubdtype(instances.dtype, np.integer):
        raise ValueError(f"instances must be an integer map, got dtype {instances.dtype}")
    if opening_radius < 0 or closing_radius < 0 or min_size < 0:
        raise ValueError("opening_radius, closing_radius and min_size must be >= 0")
    instances = instances.astype(np.int32, copy=False)
    height, width = instances.shape
    out = np.zeros((height, width), dtype=np.int32)
    if not (instances > 0).any():
        return out

    # ndimage.find_objects wants labels 1..n: compact the ids
    ids, inverse = np.unique(instances, return_inverse=True)
    inverse = inverse.reshape(instances.shape)
    if ids[0] <= 0:
        if ids[0] < 0:
            raise ValueError("instance ids must be >= 0")
        ids = ids[1:]
    else:
        inverse = inverse + 1
    margin = max(opening_radius, closing_radius) + 1

    cleaned = []  # (id, window slices, cleaned mask in the window)
    for instance_id, box in zip(ids, ndimage.find_objects(inverse)):
        if box is None:
            continue
        rows = slice(max(box[0].start - margin, 0), min(box[0].stop + margin, height))
        cols = slice(max(box[1].start - margin, 0), min(box[1].stop + margin, width))
        mask = _clean_mask(instances[rows, cols] == instance_id, opening_radius, closing_radius)
        if mask.any():
            cleaned.append((int(instance_id), rows, cols, mask))

    # 1) pixels an instance owned before and still claims stay with it (input ids are disjoint)
    for instance_id, rows, cols, mask in cleaned:
        window = out[rows, cols]
        window[mask & (instances[rows, cols] == instance_id)] = instance_id
    # 2) newly claimed pixels go to the largest claimant: larger masks write first
    for instance_id, rows, cols, mask in sorted(cleaned, key=lambda c: (-int(c[3].sum()), c[0])):
        window = out[rows, cols]
        window[mask & (window == 0)] = instance_id

    if min_size > 0:
        kept_ids, counts = np.unique(out[out > 0], return_counts=True)
        small = kept_ids[counts < min_size]
        if len(small):
            out[np.isin(out, small)] = 0
    return out


# ---------------------------------------------------------------------------------------------
# Fusion
# ---------------------------------------------------------------------------------------------


def _segments_of(panoptic: np.ndarray) -> list[tuple[int, int, list[int]]]:
    """(id, area, [x, y, w, h]) of every non-void id of a panoptic map, sorted by id."""
    ids, inverse, counts = np.unique(panoptic, return_inverse=True, return_counts=True)
    inverse = inverse.reshape(panoptic.shape)
    if ids[0] == VOID_ID:
        ids, counts, boxes = ids[1:], counts[1:], ndimage.find_objects(inverse)
    else:
        boxes = ndimage.find_objects(inverse + 1)
    result = []
    for segment_id, area, box in zip(ids, counts, boxes):
        y, x = box[0].start, box[1].start
        bbox = [int(x), int(y), int(box[1].stop - x), int(box[0].stop - y)]
        result.append((int(segment_id), int(area), bbox))
    return result


def fuse_panoptic(
    semantic: np.ndarray, instances: np.ndarray, stuff_min_area: int = 0
) -> tuple[np.ndarray, list[dict]]:
    """Fuse a semantic map (trainIds) and an instance map into a Cityscapes panoptic map.

    Parameters
    ----------
    semantic:
        (H, W) trainIds 0..18, 255 = no prediction.
    instances:
        (H, W) integer instance ids, 0 = no instance, 1..K instances (need not be consecutive).
    stuff_min_area:
        Stuff segments with fewer pixels than this become void.

    Rules
    -----
    1. Every instance takes the majority trainId of the semantic map over its pixels
       (:func:`selfpanoptic.segments.instance_majority_classes`: ignore pixels do not vote,
       ties go to the smaller trainId).
    2. An instance is *kept* when that class is a thing class (trainIds 11..18); otherwise it is
       dropped and its pixels are treated as if no instance covered them.
    3. All pixels of a kept instance belong to it, whatever their own semantic class
       (255 included). Kept instances of one class are numbered k = 0, 1, ... in increasing
       instance-id order and get panoptic id ``labelId * 1000 + k`` (first car = 26000).
       More than 1000 kept instances of one class raise ``ValueError``.
    4. Pixels not covered by a kept instance keep their semantic class if it is a stuff class
       (trainIds 0..10): all such pixels of one class form ONE segment with panoptic id
       ``labelId`` (road = 7, never 0). A stuff segment with fewer than ``stuff_min_area``
       pixels becomes void.
    5. Everything else is void (0): thing-class pixels without a kept instance, and pixels
       whose semantic value is 255.

    Returns
    -------
    panoptic_ids:
        (H, W) int32 in the official Cityscapes encoding (0 void, labelId, labelId*1000+k).
    segments:
        One dict per non-void segment, sorted by id (stuff first, then things by class and k):
        ``id``, ``category_id`` (labelId), ``area`` (pixels), ``bbox`` ([x, y, w, h]),
        ``iscrowd`` (always 0), ``train_id``, and ``instance_index`` (the id of the
        instance in ``instances`` for things, 0 for stuff). All values are Python ints.
        The areas add up to the number of non-void pixels.
    """
    semantic = np.asarray(semantic)
    instances = np.asarray(instances)
    if semantic.ndim != 2 or semantic.shape != instances.shape:
        raise ValueError(
            f"semantic and instances must be 2-D maps of one shape, got {semantic.shape} and {instances.shape}"
        )
    if not np.issubdtype(instances.dtype, np.integer):
        raise ValueError(f"instances must be an integer map, got dtype {instances.dtype}")
    if instances.size and instances.min() < 0:
        raise ValueError("instance ids must be >= 0")
    if not np.issubdtype(semantic.dtype, np.integer):
        raise ValueError(f"semantic must hold integer trainIds, got dtype {semantic.dtype}")
    bad = (semantic != IGNORE) & ((semantic < 0) | (semantic >= NUM_CLASSES))
    if bad.any():
        raise ValueError(
            f"semantic holds values outside 0..{NUM_CLASSES - 1} and {IGNORE}: "
            f"{np.unique(semantic[bad])[:10].tolist()}"
        )
    semantic = semantic.astype(np.uint8)
    label_ids = np.asarray(TRAIN_ID_TO_LABEL_ID, dtype=np.int32)

    ids, classes = instance_majority_classes(semantic, instances)
    keep = _IS_THING[classes]
    ids, classes = ids[keep], classes[keep]

    panoptic = np.zeros(semantic.shape, dtype=np.int32)
    # stuff: every stuff pixel first; kept instances overwrite theirs below
    stuff = _IS_STUFF[semantic]
    panoptic[stuff] = label_ids[semantic[stuff]]

    instance_of_segment: dict[int, int] = {}
    if len(ids):
        # k per class in increasing instance-id order (ids are sorted)
        order = np.argsort(classes, kind="stable")
        sorted_classes = classes[order]
        first = np.searchsorted(sorted_classes, sorted_classes, side="left")
        k = np.empty(len(ids), dtype=np.int64)
        k[order] = np.arange(len(ids)) - first
        if k.max() >= LABEL_DIVISOR:
            raise ValueError(f"more than {LABEL_DIVISOR} instances of one class cannot be encoded")
        segment_ids = label_ids[classes].astype(np.int64) * LABEL_DIVISOR + k
        lut_index = np.searchsorted(ids, instances)  # position of each pixel's id among kept ids
        lut_index = np.minimum(lut_index, len(ids) - 1)
        covered = (instances > 0) & (ids[lut_index] == instances)
        panoptic[covered] = segment_ids[lut_index[covered]]
        instance_of_segment = {int(s): int(i) for s, i in zip(segment_ids, ids)}

    if stuff_min_area > 0:
        stuff_ids = label_ids[list(STUFF_TRAIN_IDS)]
        present, counts = np.unique(panoptic[(panoptic > 0) & (panoptic < LABEL_DIVISOR)], return_counts=True)
        small = present[(counts < stuff_min_area) & np.isin(present, stuff_ids)]
        if len(small):
            panoptic[np.isin(panoptic, small)] = VOID_ID

    label_to_train = {label: train for train, label in enumerate(TRAIN_ID_TO_LABEL_ID)}
    segments = []
    for segment_id, area, bbox in _segments_of(panoptic) if panoptic.any() else []:
        category_id = segment_id // LABEL_DIVISOR if segment_id >= LABEL_DIVISOR else segment_id
        segments.append({
            "id": segment_id,
            "category_id": int(category_id),
            "area": area,
            "bbox": bbox,
            "iscrowd": 0,
            "train_id": label_to_train[int(category_id)],
            "instance_index": instance_of_segment.get(segment_id, 0),
        })
    return panoptic, segments


# ---------------------------------------------------------------------------------------------
# Official panoptic format
# ---------------------------------------------------------------------------------------------


def _check_image_id(image_id: str) -> None:
    if not image_id or any(ch.isspace() for ch in image_id) or "/" in image_id or "\\" in image_id:
        raise ValueError(f"image_id must be a plain file-name prefix without spaces, got {image_id!r}")


def write_panoptic_prediction(folder: Path, image_id: str, panoptic_ids: np.ndarray, segments: list[dict]) -> dict:
    """Write ``folder/<image_id>_panoptic.png`` and return its COCO-panoptic annotation.

    The returned dict ``{"image_id", "file_name", "segments_info"}`` goes into the
    ``annotations`` list of :func:`panoptic_json`; ``segments_info`` keeps only the official
    keys (id, category_id, area, bbox, iscrowd) as plain ints. Raises ``ValueError`` when the
    ids in the map and in ``segments`` differ (the official evaluator would reject the file).
    The PNG is written atomically.
    """
    _check_image_id(image_id)
    panoptic_ids = np.asarray(panoptic_ids)
    present = set(np.unique(panoptic_ids).tolist()) - {VOID_ID}
    listed = [int(s["id"]) for s in segments]
    if len(set(listed)) != len(listed) or set(listed) != present or VOID_ID in listed:
        raise ValueError(
            f"segments do not match the panoptic map of {image_id}: "
            f"only in the map {sorted(present - set(listed))[:10]}, "
            f"only in segments {sorted(set(listed) - present)[:10]}"
        )
    folder = Path(folder)
    file_name = f"{image_id}_panoptic.png"
    with atomic_output(folder / file_name) as tmp:
        Image.fromarray(ids_to_rgb(panoptic_ids), "RGB").save(tmp, format="PNG")
    segments_info = [
        {
            "id": int(s["id"]),
            "category_id": int(s["category_id"]),
            "area": int(s["area"]),
            "bbox": [int(v) for v in s["bbox"]],
            "iscrowd": int(s.get("iscrowd", 0)),
        }
        for s in segments
    ]
    return {"image_id": image_id, "file_name": file_name, "segments_info": segments_info}


def cityscapes_categories() -> list[dict]:
    """The ``categories`` list exactly as ``createPanopticImgs`` writes it (labelIds, not trainIds).

    Built like the official script: every label of ``cityscapesscripts.helpers.labels`` that is
    not ``ignoreInEval``, with id = labelId, name, color (a list, as after a JSON round trip),
    supercategory = category and isthing = hasInstances.
    """
    from cityscapesscripts.helpers.labels import labels

    return [
        {
            "id": int(label.id),
            "name": label.name,
            "color": [int(c) for c in label.color],
            "supercategory": label.category,
            "isthing": 1 if label.hasInstances else 0,
        }
        for label in labels
        if not label.ignoreInEval
    ]


def panoptic_json(annotations: list[dict], image_ids: Iterable[str], height: int, width: int) -> dict:
    """The prediction JSON for ``evalPanopticSemanticLabeling``: images, annotations, categories.

    ``images`` has one entry per image id: ``{"id": image_id, "file_name":
    "<image_id>_leftImg8bit.png", "width", "height"}`` (all images share one size).
    ``categories`` is :func:`cityscapes_categories`. Raises ``ValueError`` when an annotation
    names an image id that is not listed or when an image id has two annotations.
    """
    image_ids = [str(i) for i in image_ids]
    if len(set(image_ids)) != len(image_ids):
        raise ValueError("image_ids must be unique")
    known = set(image_ids)
    seen: set[str] = set()
    for annotation in annotations:
        image_id = annotation["image_id"]
        if image_id not in known:
            raise ValueError(f"annotation for unknown image id {image_id!r}")
        if image_id in seen:
            raise ValueError(f"two annotations for image id {image_id!r}")
        seen.add(image_id)
    images = [
        {"id": image_id, "file_name": f"{image_id}_leftImg8bit.png", "width": int(width), "height": int(height)}
        for image_id in image_ids
    ]
    return {"images": images, "annotations": list(annotations), "categories": cityscapes_categories()}


# ---------------------------------------------------------------------------------------------
# Official instance format
# ---------------------------------------------------------------------------------------------

MASK_FOLDER = "masks"
"""Subfolder (of the txt's folder) holding the instance mask PNGs."""


def write_instance_prediction(
    folder: Path,
    image_id: str,
    instances: np.ndarray,
    classes: Mapping[int, int],
    scores: Mapping[int, float],
) -> Path:
    """Write one image's instances in the format of ``evalInstanceLevelSemanticLabeling``.

    Writes ``folder/masks/<image_id>_<id>.png`` (8-bit grey, 255 inside the instance, 0
    outside) for every instance id > 0 of ``instances`` whose ``classes[id]`` (a trainId) is a
    thing class, and ``folder/<image_id>.txt`` with one line per mask, in increasing id order::

        masks/<image_id>_<id>.png <labelId> <score>

    (paths relative to the txt's folder, as the official evaluator resolves them). Instances of
    a non-thing class (stuff, 255) are skipped; an image without instances gets an empty txt.
    Raises ``ValueError`` when an instance id of the map has no class or a written instance
    has no finite score. The txt is written last and atomically. Returns its path.
    """
    _check_image_id(image_id)
    instances = np.asarray(instances)
    if instances.ndim != 2 or not np.issubdtype(instances.dtype, np.integer):
        raise ValueError(f"instances must be a 2-D integer map, got {instances.dtype} {instances.shape}")
    classes = {int(k): int(v) for k, v in classes.items()}
    scores = {int(k): float(v) for k, v in scores.items()}
    ids = [int(i) for i in np.unique(instances) if i > 0]
    missing = [i for i in ids if i not in classes]
    if missing:
        raise ValueError(f"instance ids without a class: {missing[:10]}")

    folder = Path(folder)
    (folder / MASK_FOLDER).mkdir(parents=True, exist_ok=True)
    lines = []
    for instance_id in ids:
        train_id = classes[instance_id]
        if not (0 <= train_id < 256 and _IS_THING[train_id]):
            continue
        score = scores.get(instance_id)
        if score is None or not math.isfinite(score):
            raise ValueError(f"instance {instance_id} has no finite score (got {score!r})")
        name = f"{MASK_FOLDER}/{image_id}_{instance_id}.png"
        mask = (instances == instance_id).astype(np.uint8) * 255
        Image.fromarray(mask, "L").save(folder / name, format="PNG")
        lines.append(f"{name} {TRAIN_ID_TO_LABEL_ID[train_id]} {format(score, '.9g')}\n")
    txt = folder / f"{image_id}.txt"
    atomic_write_text(txt, "".join(lines))
    return txt
