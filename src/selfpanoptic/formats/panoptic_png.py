"""Cityscapes/COCO panoptic files: the RGB id PNG, its reader, and the prediction writer.

A panoptic PNG stores one segment id per pixel as ``id = R + 256 G + 256^2 B`` (ids below
``2^24``); the ids follow :mod:`selfpanoptic.formats.cityscapes_ids`. A panoptic prediction for
``cityscapesscripts.evaluation.evalPanopticSemanticLabeling`` is one ``<image_id>_panoptic.png``
per image plus a COCO-panoptic JSON (``images``, ``annotations`` with ``segments_info``,
``categories``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

import numpy as np
from PIL import Image

from ..atomic import atomic_output
from .cityscapes_ids import VOID_ID, check_image_id, cityscapes_categories

__all__ = [
    "ids_to_rgb",
    "panoptic_document",
    "panoptic_json",
    "read_panoptic_png",
    "rgb_to_ids",
    "write_panoptic_prediction",
]


def rgb_to_ids(rgb: np.ndarray) -> np.ndarray:
    """Segment ids of a panoptic image.

    Parameters
    ----------
    rgb : numpy.ndarray, shape (H, W, 3) or (H, W, 4)
        Integer channels R, G, B (a fourth channel, alpha, is ignored).

    Returns
    -------
    numpy.ndarray of int64, shape (H, W)
        ``R + 256 G + 256^2 B``.
    """
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] < 3:
        raise ValueError(f"expected an (H, W, 3) RGB array, got shape {rgb.shape}")
    rgb = rgb.astype(np.int64, copy=False)
    return rgb[:, :, 0] + 256 * rgb[:, :, 1] + 65536 * rgb[:, :, 2]


def ids_to_rgb(ids: np.ndarray) -> np.ndarray:
    """Inverse of :func:`rgb_to_ids`.

    Parameters
    ----------
    ids : array_like of int, any shape ``S``
        Segment ids, ``0 <= id < 2^24``.

    Returns
    -------
    numpy.ndarray of uint8, shape ``S + (3,)``
        Channels ``id & 255``, ``(id >> 8) & 255``, ``(id >> 16) & 255``.

    Raises
    ------
    ValueError
        When an id lies outside ``[0, 2^24)``.
    """
    ids = np.asarray(ids, dtype=np.int64)
    if ids.size and (ids.min() < 0 or ids.max() >= 1 << 24):
        raise ValueError("segment ids must lie in [0, 2^24) to be stored as RGB")
    rgb = np.empty(ids.shape + (3,), dtype=np.uint8)
    rgb[..., 0] = ids & 255
    rgb[..., 1] = (ids >> 8) & 255
    rgb[..., 2] = (ids >> 16) & 255
    return rgb


def read_panoptic_png(path: str | os.PathLike) -> np.ndarray:
    """Read the segment-id map of a panoptic PNG.

    Parameters
    ----------
    path : str or os.PathLike
        An RGB or RGBA PNG (alpha is ignored).

    Returns
    -------
    numpy.ndarray of int32, shape (H, W)
        ``R + 256 G + 256^2 B`` of every pixel (``< 2^24``).

    Raises
    ------
    ValueError
        Naming the file, when the PNG is not RGB(A).
    """
    with Image.open(path) as image:
        if image.mode not in ("RGB", "RGBA"):
            raise ValueError(
                f"{os.fspath(path)}: a panoptic PNG must be RGB (id = R + 256 G + 256^2 B), got mode {image.mode}"
            )
        width, height = image.size
        # Pillow keeps RGB pixels in 4 bytes: "RGBX" export is a plain copy (no conversion)
        raw = image.tobytes("raw", "RGBX" if image.mode == "RGB" else "RGBA")
    # bytes R, G, B, X read as one little-endian int32 = R + 2^8 G + 2^16 B + 2^24 X
    return np.frombuffer(raw, dtype="<i4").reshape(height, width) & 0xFFFFFF


def write_panoptic_prediction(folder: Path, image_id: str, panoptic_ids: np.ndarray, segments: list[dict]) -> dict:
    """Write ``folder/<image_id>_panoptic.png`` and return its COCO-panoptic annotation.

    Parameters
    ----------
    folder : pathlib.Path
        Output folder (created if missing).
    image_id : str
        Cityscapes image id, e.g. ``"frankfurt_000000_000294"`` (see
        :func:`~selfpanoptic.formats.cityscapes_ids.check_image_id`).
    panoptic_ids : numpy.ndarray of int, shape (H, W)
        Segment ids ``0 <= id < 2^24``, 0 = void.
    segments : list of dict
        One dict per non-void id of the map with ``id``, ``category_id``, ``area``, ``bbox``
        (``[x, y, w, h]``) and optionally ``iscrowd`` (default 0); other keys are dropped.

    Returns
    -------
    dict
        ``{"image_id", "file_name", "segments_info"}`` for the ``annotations`` list of
        :func:`panoptic_json`; ``segments_info`` keeps only the official keys (id,
        category_id, area, bbox, iscrowd) as plain ints.

    Raises
    ------
    ValueError
        When the ids in the map and in ``segments`` differ (the official evaluator would reject
        the file) or ``image_id`` is not a plain file-name prefix.

    Notes
    -----
    The PNG (RGB, :func:`ids_to_rgb`) is written atomically.
    """
    check_image_id(image_id)
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


def panoptic_document(images: list[dict], annotations: list[dict], categories: list[dict]) -> dict:
    """The prediction JSON for ``evalPanopticSemanticLabeling``, checked: images, annotations, categories.

    The one place a panoptic prediction's JSON is put together (``fuse-panoptic``,
    ``predict-panoptic`` and :func:`panoptic_json` all build it here).

    Parameters
    ----------
    images : list of dict
        One entry per image, each with a unique ``id`` (str) and whatever else the caller
        records (``file_name``, ``height``, ``width``); kept as given.
    annotations : list of dict
        What :func:`write_panoptic_prediction` returned, at most one per image id.
    categories : list of dict
        The panoptic categories (those of the ground truth, or
        :func:`~selfpanoptic.formats.cityscapes_ids.cityscapes_categories`).

    Returns
    -------
    dict
        ``{"images", "annotations", "categories"}`` in this key order, the lists as given.

    Raises
    ------
    ValueError
        When image ids repeat, or an annotation names an image id that is not listed or that
        already has an annotation.
    """
    image_ids = [str(image["id"]) for image in images]
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
    return {"images": list(images), "annotations": list(annotations), "categories": list(categories)}


def panoptic_json(annotations: list[dict], image_ids: Iterable[str], height: int, width: int) -> dict:
    """The prediction JSON of images of one size named the Cityscapes way (:func:`panoptic_document`).

    Parameters
    ----------
    annotations : list of dict
        What :func:`write_panoptic_prediction` returned, at most one per image id.
    image_ids : iterable of str
        Every image of the split, unique.
    height, width : int
        The size shared by all images.

    Returns
    -------
    dict
        ``{"images", "annotations", "categories"}``: ``images`` has one entry
        ``{"id": image_id, "file_name": "<image_id>_leftImg8bit.png", "width", "height"}`` per
        image id, ``categories`` is
        :func:`~selfpanoptic.formats.cityscapes_ids.cityscapes_categories`. JSON-serialisable.

    Raises
    ------
    ValueError
        As :func:`panoptic_document`.
    """
    images = [
        {"id": str(image_id), "file_name": f"{image_id}_leftImg8bit.png", "width": int(width), "height": int(height)}
        for image_id in image_ids
    ]
    return panoptic_document(images, annotations, cityscapes_categories())
