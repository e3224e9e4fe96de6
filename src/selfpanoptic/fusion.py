"""Panoptic fusion of a semantic and an instance prediction, and instance-mask clean-up.

The fusion follows Panoptic-DeepLab: every instance takes the majority semantic class of its
pixels, instances whose class is not a thing class are dropped, stuff keeps the semantic
prediction (one segment per stuff class and image), everything else is void.

Panoptic ids use the official Cityscapes encoding of :mod:`selfpanoptic.formats.cityscapes_ids`
(0 void, stuff = labelId, thing = labelId * 1000 + k), **not** ``class * divisor + k``, which
would give road (trainId 0) the void id 0. The files the official evaluators read are written
by :mod:`selfpanoptic.formats.panoptic_png` and :mod:`selfpanoptic.formats.instance_files`.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from skimage.morphology import closing, disk, opening
from skimage.segmentation import relabel_sequential
from skimage.util import map_array

from .classes import (
    IGNORE, LABEL_ID_TO_TRAIN_ID_LUT, NUM_CLASSES, STUFF_TRAIN_IDS, THING_TRAIN_IDS, TRAIN_ID_TO_LABEL_ID,
)
from .formats.cityscapes_ids import LABEL_DIVISOR, VOID_ID, decode_instance_ids, encode_instance_ids
from .segments import instance_majority_classes

__all__ = ["clean_instance_masks", "fuse_panoptic"]

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

    if instances.min() < 0:
        raise ValueError("instance ids must be >= 0")
    # ndimage.find_objects wants labels 1..n: the i-th smallest id becomes i, 0 stays 0
    dense, forward, _ = relabel_sequential(instances)
    ids = forward.in_values[forward.in_values > 0]
    margin = max(opening_radius, closing_radius) + 1

    cleaned = []  # (id, window slices, cleaned mask in the window)
    for instance_id, box in zip(ids, ndimage.find_objects(dense)):
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
    # ids -> 1..n in increasing order (void stays 0), as ndimage.find_objects wants
    dense, forward, _ = relabel_sequential(panoptic)
    ids = forward.in_values[forward.in_values != VOID_ID]
    counts = np.bincount(dense.ravel(), minlength=len(ids) + 1)[1:]
    boxes = ndimage.find_objects(dense)
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
    semantic, instances = _checked_maps(semantic, instances)
    label_ids = np.asarray(TRAIN_ID_TO_LABEL_ID, dtype=np.int32)
    ids, classes = instance_majority_classes(semantic, instances)
    keep = _IS_THING[classes]
    ids, classes = ids[keep], classes[keep]

    panoptic = np.zeros(semantic.shape, dtype=np.int32)
    # stuff: every stuff pixel first; kept instances overwrite theirs below
    stuff = _IS_STUFF[semantic]
    panoptic[stuff] = label_ids[semantic[stuff]]
    instance_of_segment = _paint_instances(panoptic, instances, ids, label_ids[classes], classes)
    if stuff_min_area > 0:
        _void_small_stuff(panoptic, label_ids[list(STUFF_TRAIN_IDS)], stuff_min_area)
    return panoptic, _segment_table(panoptic, instance_of_segment)


def _checked_maps(semantic: np.ndarray, instances: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The maps of :func:`fuse_panoptic` as arrays (semantic as uint8), or ``ValueError`` naming
    what is wrong with them."""
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
    return semantic.astype(np.uint8), instances


def _paint_instances(panoptic: np.ndarray, instances: np.ndarray, ids: np.ndarray, label_ids: np.ndarray,
                     classes: np.ndarray) -> dict[int, int]:
    """Write the kept instances (sorted ``ids``, their ``classes`` and ``label_ids``) into
    ``panoptic`` in place, numbered per class in increasing id order; returns
    ``{panoptic segment id: instance id}``."""
    if not len(ids):
        return {}
    order = np.argsort(classes, kind="stable")
    sorted_classes = classes[order]
    first = np.searchsorted(sorted_classes, sorted_classes, side="left")
    k = np.empty(len(ids), dtype=np.int64)
    k[order] = np.arange(len(ids)) - first
    segment_ids = encode_instance_ids(label_ids, k)  # ValueError past 1000 per class
    # kept instance id -> its panoptic id; background and dropped instances -> 0
    mapped = map_array(instances, ids, segment_ids.astype(np.int32))
    covered = mapped > 0
    panoptic[covered] = mapped[covered]
    return {int(s): int(i) for s, i in zip(segment_ids, ids)}


def _void_small_stuff(panoptic: np.ndarray, stuff_ids: np.ndarray, min_area: int) -> None:
    """Make void, in place, every stuff segment (label id in ``stuff_ids``) under ``min_area`` pixels."""
    present, counts = np.unique(panoptic[(panoptic > 0) & (panoptic < LABEL_DIVISOR)], return_counts=True)
    small = present[(counts < min_area) & np.isin(present, stuff_ids)]
    if len(small):
        panoptic[np.isin(panoptic, small)] = VOID_ID


def _segment_table(panoptic: np.ndarray, instance_of_segment: dict[int, int]) -> list[dict]:
    """The segments dicts of :func:`fuse_panoptic`'s result, sorted by id."""
    found = _segments_of(panoptic) if panoptic.any() else []
    category_ids, _ = decode_instance_ids(np.array([s[0] for s in found], dtype=np.int64))
    segments = []
    for (segment_id, area, bbox), category_id in zip(found, category_ids.tolist()):
        segments.append({
            "id": segment_id,
            "category_id": category_id,
            "area": area,
            "bbox": bbox,
            "iscrowd": 0,
            "train_id": int(LABEL_ID_TO_TRAIN_ID_LUT[category_id]),
            "instance_index": instance_of_segment.get(segment_id, 0),
        })
    return segments
