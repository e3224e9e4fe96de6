"""Semantic predictions in the format of ``evalPixelLevelSemanticLabeling`` and the test server.

One 8-bit grey PNG per image holding Cityscapes *labelIds* (road = 7, ..., bicycle = 33), at the
ground truth's resolution. The official evaluator finds an image's prediction by searching the
prediction folder for a PNG whose name contains ``<city>_<sequence>_<frame>``, so a folder must
hold exactly one PNG per image: colour pictures go to a folder of their own.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from ..classes import IGNORE, NUM_CLASSES, train_ids_to_label_ids
from ..colours import colourise

__all__ = ["write_semantic_prediction"]


def write_semantic_prediction(label_ids_path: Path, train_ids: np.ndarray, colour_path: Path | None = None) -> None:
    """Write one image's predicted classes as a labelIds PNG (and, optionally, a colour PNG).

    Parameters
    ----------
    label_ids_path : pathlib.Path
        The labelIds PNG to write (8-bit grey); its folder is created if missing.
    train_ids : numpy.ndarray of uint8, shape (H, W)
        Predicted trainIds 0..18; 255 (no prediction) is written as labelId 0 (unlabeled),
        which the evaluator counts as a miss of the ground-truth class.
    colour_path : pathlib.Path, optional
        Where to write the Cityscapes colours of the same map (RGB PNG).

    Raises
    ------
    ValueError
        When ``train_ids`` is not 2-D or holds values other than 0..18 and 255.
    """
    train_ids = np.asarray(train_ids)
    if train_ids.ndim != 2:
        raise ValueError(f"train_ids must be a 2-D map, got shape {train_ids.shape}")
    bad = np.setdiff1d(np.unique(train_ids), [*range(NUM_CLASSES), IGNORE])
    if bad.size:
        raise ValueError(f"train_ids holds values that are not trainIds: {bad[:10].tolist()}")
    # uint8 (H, W) is saved as 8-bit grey, (H, W, 3) as RGB
    for path, picture in ((label_ids_path, train_ids_to_label_ids(train_ids)),
                          (colour_path, None if colour_path is None else colourise(train_ids))):
        if path is None:
            continue
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.ascontiguousarray(picture, dtype=np.uint8)).save(path, format="PNG")
