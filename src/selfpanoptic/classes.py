"""The 19 Cityscapes evaluation classes and the id mappings of the three dataset formats.

Everything downstream works in Cityscapes *trainIds* (0..18, 255 = ignore). The tables here
convert the ids found in the files of each dataset format to trainIds and back.
"""

from __future__ import annotations

import numpy as np

IGNORE = 255
"""trainId of pixels that carry no label (void, unlabelled, or a class outside the 19)."""

CLASS_NAMES: tuple[str, ...] = (
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign",
    "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus", "train",
    "motorcycle", "bicycle",
)
"""Class name of each trainId, in trainId order."""

NUM_CLASSES = len(CLASS_NAMES)

THING_TRAIN_IDS: tuple[int, ...] = tuple(range(11, 19))
"""person, rider, car, truck, bus, train, motorcycle, bicycle: the classes with instances."""

STUFF_TRAIN_IDS: tuple[int, ...] = tuple(range(0, 11))

SYNTHIA16_TRAIN_IDS: tuple[int, ...] = tuple(
    t for t in range(NUM_CLASSES) if CLASS_NAMES[t] not in ("terrain", "truck", "train")
)
"""The 16 classes of the Synthia -> Cityscapes evaluation protocol (terrain, truck, train left out)."""

SYNTHIA13_TRAIN_IDS: tuple[int, ...] = tuple(
    t for t in SYNTHIA16_TRAIN_IDS if CLASS_NAMES[t] not in ("wall", "fence", "pole")
)
"""The 13 classes of the Synthia -> Cityscapes "mIoU*" most papers also report (the 16 without
wall, fence and pole, whose Synthia labels are least reliable)."""

TRAIN_ID_TO_LABEL_ID: tuple[int, ...] = (
    7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33,
)
"""Cityscapes labelId of each trainId (the ids stored in gtFine *_labelIds.png and in GTA5 labels)."""

SYNTHIA16_LABEL_IDS: tuple[int, ...] = tuple(TRAIN_ID_TO_LABEL_ID[t] for t in SYNTHIA16_TRAIN_IDS)
""":data:`SYNTHIA16_TRAIN_IDS` as Cityscapes labelIds: the panoptic categories of the Synthia protocol."""

SYNTHIA_ID_TO_TRAIN_ID: dict[int, int] = {
    3: 0, 4: 1, 2: 2, 21: 3, 5: 4, 7: 5, 15: 6, 9: 7, 6: 8, 16: 9, 1: 10,
    10: 11, 17: 12, 8: 13, 18: 14, 19: 15, 20: 16, 12: 17, 11: 18,
}
"""Synthia RAND-CITYSCAPES class id (channel 0 of GT/LABELS) -> trainId; any other id is ignore."""

MAX_LABEL_ID = 33
"""Largest Cityscapes labelId (bicycle); -1 (license plate) never appears in label PNGs."""

MAX_SYNTHIA_ID = 22
"""Largest class id in Synthia RAND-CITYSCAPES GT/LABELS (22 = lanemarking)."""


def _lookup_table(mapping: dict[int, int], size: int) -> np.ndarray:
    table = np.full(size, IGNORE, dtype=np.uint8)
    for src, dst in mapping.items():
        table[src] = dst
    return table


LABEL_ID_TO_TRAIN_ID_LUT = _lookup_table(
    {label_id: train_id for train_id, label_id in enumerate(TRAIN_ID_TO_LABEL_ID)}, 256
)
"""uint8[256]: Cityscapes labelId -> trainId (ignore for void and unevaluated classes)."""

SYNTHIA_ID_TO_TRAIN_ID_LUT = _lookup_table(SYNTHIA_ID_TO_TRAIN_ID, 65536)
"""uint8[65536]: Synthia class id -> trainId, indexable by any 16-bit value."""

TRAIN_ID_TO_SYNTHIA_ID: dict[int, int] = {t: s for s, t in SYNTHIA_ID_TO_TRAIN_ID.items()}


def class_id(name: str) -> int:
    """trainId of a class given by name, e.g. ``class_id("truck") == 14``.

    Raises ``KeyError`` listing the valid names when ``name`` is not one of them.
    """
    try:
        return CLASS_NAMES.index(name)
    except ValueError:
        raise KeyError(
            f"unknown class {name!r}; valid class names: {', '.join(CLASS_NAMES)}"
        ) from None


def label_ids_to_train_ids(label_ids: np.ndarray) -> np.ndarray:
    """Map an array of Cityscapes labelIds (any integer dtype, values 0..255) to uint8 trainIds."""
    return LABEL_ID_TO_TRAIN_ID_LUT[np.asarray(label_ids, dtype=np.intp)]


def train_ids_to_label_ids(train_ids: np.ndarray) -> np.ndarray:
    """Map uint8 trainIds to Cityscapes labelIds; ignore (255) becomes 0 (unlabeled)."""
    table = np.zeros(256, dtype=np.uint8)
    table[: NUM_CLASSES] = TRAIN_ID_TO_LABEL_ID
    return table[np.asarray(train_ids, dtype=np.intp)]
