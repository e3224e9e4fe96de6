"""The Cityscapes id encodings shared by its instance and panoptic files.

Cityscapes stores one integer per pixel in ``gtFine/*_instanceIds.png`` and in panoptic PNGs
(what ``createPanopticImgs`` derives from the former, and what the official panoptic evaluator
reads):

* ``0`` is void (unlabelled);
* an id below :data:`LABEL_DIVISOR` is a Cityscapes *labelId*: a stuff segment (road = 7,
  sky = 23), or the crowd/group region of a thing class that has no instance (cargroup = 26);
* a thing instance has id ``labelId * LABEL_DIVISOR + k``, ``k = 0, 1, ...`` numbering the
  instances of one class in one image (first car = 26000, second car = 26001).

LabelIds (not trainIds) are used so that road (trainId 0) does not get the void id 0.
:func:`encode_instance_ids` and :func:`decode_instance_ids` are the only places that apply
the ``* 1000`` / ``// 1000`` arithmetic.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "LABEL_DIVISOR",
    "VOID_ID",
    "check_image_id",
    "cityscapes_categories",
    "decode_instance_ids",
    "encode_instance_ids",
]

VOID_ID = 0
"""Id of void pixels (unlabelled in the PNG, absent from ``segments_info``)."""

LABEL_DIVISOR = 1000
"""Thing instance ids are ``labelId * LABEL_DIVISOR + k``; smaller ids are plain labelIds."""


def encode_instance_ids(label_ids, k) -> np.ndarray:
    """Ids of thing instances: ``labelId * 1000 + k``.

    Parameters
    ----------
    label_ids : array_like of int
        Cityscapes labelIds of the instances' classes (e.g. 26 = car), all ``>= 1``.
    k : array_like of int
        Index of each instance within its class and image, ``0 <= k < 1000``; broadcast
        against ``label_ids``.

    Returns
    -------
    numpy.ndarray of int64
        The instance ids, of the broadcast shape of the inputs (0-d for two scalars).

    Raises
    ------
    ValueError
        When a ``k`` lies outside ``[0, 1000)`` (more than 1000 instances of one class) or a
        labelId is below 1 (``0 * 1000 + k`` would read back as the labelId ``k``).

    Examples
    --------
    >>> encode_instance_ids([26, 26, 24], [0, 1, 0]).tolist()
    [26000, 26001, 24000]
    """
    label_ids = np.asarray(label_ids, dtype=np.int64)
    k = np.asarray(k, dtype=np.int64)
    if k.size and (k.min() < 0 or k.max() >= LABEL_DIVISOR):
        raise ValueError(
            f"instance indices k must lie in [0, {LABEL_DIVISOR}): "
            f"more than {LABEL_DIVISOR} instances of one class cannot be encoded"
        )
    if label_ids.size and label_ids.min() < 1:
        raise ValueError("instance labelIds must be >= 1: labelId 0 would make the id read as a plain labelId")
    return label_ids * LABEL_DIVISOR + k


def decode_instance_ids(ids) -> tuple[np.ndarray, np.ndarray]:
    """Split Cityscapes instance/panoptic ids into labelId and instance index.

    Parameters
    ----------
    ids : array_like of int
        Ids ``>= 0`` of any shape: void 0, labelIds ``< 1000`` (stuff and crowd regions), or
        ``labelId * 1000 + k`` (thing instances).

    Returns
    -------
    label_id : numpy.ndarray
        The labelId of every id (ids below 1000 are their own labelId, so void stays 0).
    k : numpy.ndarray
        The instance index within the class, ``-1`` where the id is not an instance id
        (``id < 1000``: void, stuff, crowd).

    Both have the shape of ``ids`` and a signed integer dtype at least as wide as int32 that
    holds all values of ``ids`` (int32 for uint8/uint16/int32 input, int64 above).

    Raises
    ------
    ValueError
        When ``ids`` is not an integer array or holds a negative value.

    Examples
    --------
    >>> label_id, k = decode_instance_ids([0, 7, 26, 26000, 26001, 33999])
    >>> label_id.tolist(), k.tolist()
    ([0, 7, 26, 26, 26, 33], [-1, -1, -1, 0, 1, 999])
    """
    ids = np.asarray(ids)
    if not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"ids must be integers, got dtype {ids.dtype}")
    if ids.size and ids.min() < 0:
        raise ValueError("Cityscapes ids must be >= 0")
    dtype = np.promote_types(ids.dtype, np.int32)
    if dtype.kind != "i":  # uint64 promotes to float64
        dtype = np.dtype(np.int64)
    ids = ids.astype(dtype, copy=False)
    instance = ids >= LABEL_DIVISOR
    label_id = np.where(instance, ids // LABEL_DIVISOR, ids)
    k = np.where(instance, ids % LABEL_DIVISOR, np.array(-1, dtype=dtype))
    return label_id, k


def check_image_id(image_id: str) -> None:
    """Raise ``ValueError`` unless ``image_id`` can prefix a prediction's file names.

    The official evaluators find files by ``<image_id>_...`` names and the instance txt is split
    on spaces, so an id must be non-empty without whitespace or path separators
    (e.g. ``"frankfurt_000000_000294"``).
    """
    if not image_id or any(ch.isspace() for ch in image_id) or "/" in image_id or "\\" in image_id:
        raise ValueError(f"image_id must be a plain file-name prefix without spaces, got {image_id!r}")


def cityscapes_categories() -> list[dict]:
    """The panoptic ``categories`` list exactly as ``createPanopticImgs`` writes it.

    Built like the official script: every label of ``cityscapesscripts.helpers.labels`` that is
    not ``ignoreInEval`` (the 19 evaluated classes, in labelId order), as

    ``{"id": labelId, "name": str, "color": [r, g, b], "supercategory": str, "isthing": 0 | 1}``

    with ``color`` a list (as after a JSON round trip), ``supercategory`` the label's category
    and ``isthing`` its ``hasInstances``. Accepted as is by
    :class:`selfpanoptic.metrics.panoptic.PanopticEvaluator`.

    Returns
    -------
    list of dict
        19 entries, ids 7, 8, 11, ..., 33; the 8 with ``isthing == 1`` are ids 24..28, 31..33.
    """
    from cityscapesscripts.helpers.labels import labels  # only needed here: keep the import lazy

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
