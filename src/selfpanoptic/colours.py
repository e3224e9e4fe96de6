"""The Cityscapes colour of each trainId, for pictures of label maps (report, TensorBoard)."""

from __future__ import annotations

import numpy as np
from cityscapesscripts.helpers.labels import id2label

from .classes import TRAIN_ID_TO_LABEL_ID

TRAIN_ID_COLOURS = np.zeros((256, 3), dtype=np.uint8)
"""RGB colour of each trainId (index 0..255); ignore (255) and unused ids are black."""
for _t, _label_id in enumerate(TRAIN_ID_TO_LABEL_ID):
    TRAIN_ID_COLOURS[_t] = id2label[_label_id].color


def colourise(labels: np.ndarray) -> np.ndarray:
    """(H, W) trainIds -> (H, W, 3) uint8 Cityscapes colours; ignore (255) is black."""
    return TRAIN_ID_COLOURS[labels]
