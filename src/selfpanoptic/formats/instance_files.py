"""Instance predictions in the format of ``evalInstanceLevelSemanticLabeling``.

One ``<image_id>.txt`` per image lists its instances, one per line::

    masks/<image_id>_<id>.png <labelId> <confidence>

with one 8-bit grey mask PNG per instance (255 inside, 0 outside); mask paths are relative to
the txt's folder, as the official evaluator resolves them.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Mapping

import numpy as np
from PIL import Image

from ..atomic import atomic_write_text
from ..classes import THING_TRAIN_IDS, TRAIN_ID_TO_LABEL_ID
from .cityscapes_ids import check_image_id

__all__ = ["MASK_FOLDER", "write_instance_prediction"]

MASK_FOLDER = "masks"
"""Subfolder (of the txt's folder) holding the instance mask PNGs."""


def write_instance_prediction(
    folder: Path,
    image_id: str,
    instances: np.ndarray,
    classes: Mapping[int, int],
    scores: Mapping[int, float],
) -> Path:
    """Write one image's instances as ``folder/<image_id>.txt`` and ``folder/masks/*.png``.

    Parameters
    ----------
    folder : pathlib.Path
        Output folder; ``folder/masks`` is created if missing.
    image_id : str
        Cityscapes image id, a plain file-name prefix (see
        :func:`~selfpanoptic.formats.cityscapes_ids.check_image_id`).
    instances : numpy.ndarray of int, shape (H, W)
        Instance ids, 0 = no instance.
    classes : mapping of int to int
        trainId of every instance id > 0 of ``instances`` (more keys are allowed).
    scores : mapping of int to float
        Confidence of every instance that is written.

    Returns
    -------
    pathlib.Path
        The txt, ``folder/<image_id>.txt``.

    Raises
    ------
    ValueError
        When ``instances`` is not a 2-D integer map, an instance id of the map has no class, or
        a written instance has no finite score.

    Notes
    -----
    Writes ``folder/masks/<image_id>_<id>.png`` (8-bit grey, 255 inside the instance, 0
    outside) for every instance whose class is a thing trainId, and one txt line per mask in
    increasing id order: ``masks/<image_id>_<id>.png <labelId> <score>`` (score with 9
    significant digits). Instances of a non-thing class (stuff, 255) are skipped; an image
    without instances gets an empty txt. The txt is written last and atomically.
    """
    check_image_id(image_id)
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
        if train_id not in THING_TRAIN_IDS:
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
