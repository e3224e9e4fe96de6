"""Writing one toy scene in each real dataset's file format.

The inverse of the readers in :mod:`selfpanoptic.data`: a scene's trainId labels and instance
indices become Synthia class/instance channels, GTA5 labelId palette PNGs, or Cityscapes
labelIds/instanceIds/color PNGs, exactly as the real datasets store them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from cityscapesscripts.helpers.labels import id2label
from PIL import Image

from ..classes import TRAIN_ID_TO_SYNTHIA_ID, class_id, train_ids_to_label_ids
from ..formats.cityscapes_ids import encode_instance_ids
from ..pngio import write_png

_LABEL_ID_PALETTE = np.zeros((256, 3), dtype=np.uint8)
for _label_id, _label in id2label.items():
    if 0 <= _label_id < 256:
        _LABEL_ID_PALETTE[_label_id] = _label.color

SYNTHIA_UNLABELLED_CLASSES = ("truck", "train")
"""Classes whose pixels Synthia stores with class 0 but a real instance id (as the real dataset does)."""


def synthia_label_channels(semantic: np.ndarray, instances: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint16 GT/LABELS content: channel 0 Synthia class id, channel 1 instance id, channel 2 zero.

    semantic: (H, W) uint8 trainIds 0..18; instances: (H, W) int32 (0 = none).
    """
    table = np.zeros(256, dtype=np.uint16)
    for train_id, synthia_id in TRAIN_ID_TO_SYNTHIA_ID.items():
        table[train_id] = synthia_id
    for name in SYNTHIA_UNLABELLED_CLASSES:
        table[class_id(name)] = 0
    out = np.zeros((*semantic.shape, 3), dtype=np.uint16)
    out[..., 0] = table[semantic]
    out[..., 1] = instances.astype(np.uint16)
    return out


def cityscapes_instance_ids(semantic: np.ndarray, instances: np.ndarray, instance_classes: dict[int, int]) -> np.ndarray:
    """(H, W) uint16 ``*_instanceIds.png`` content: stuff pixels hold their labelId,
    the k-th instance of a thing class (k from 0, in instance-index order) holds ``labelId * 1000 + k``.
    """
    label_ids = train_ids_to_label_ids(semantic).astype(np.uint16)
    out = label_ids.copy()
    next_k: dict[int, int] = {}
    for index in sorted(instance_classes):
        label_id = int(train_ids_to_label_ids(np.array([instance_classes[index]]))[0])
        k = next_k.get(label_id, 0)
        next_k[label_id] = k + 1
        out[instances == index] = encode_instance_ids(label_id, k)
    return out


def label_id_palette_image(label_ids: np.ndarray) -> Image.Image:
    """A palette PNG whose indices are the labelIds and whose colours are Cityscapes' (as GTA5 ships)."""
    image = Image.fromarray(label_ids.astype(np.uint8), mode="P")
    image.putpalette(_LABEL_ID_PALETTE.ravel().tolist())
    return image


def _folders(*folders: Path) -> None:
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)


def write_synthia_sample(root: Path, stem: str, image: np.ndarray, semantic: np.ndarray, instances: np.ndarray) -> None:
    _folders(root / "RGB", root / "GT" / "LABELS")
    write_png(root / "RGB" / f"{stem}.png", image)
    write_png(root / "GT" / "LABELS" / f"{stem}.png", synthia_label_channels(semantic, instances))


def write_gta5_sample(root: Path, stem: str, image: np.ndarray, semantic: np.ndarray) -> None:
    _folders(root / "images", root / "labels")
    write_png(root / "images" / f"{stem}.png", image)
    label_id_palette_image(train_ids_to_label_ids(semantic)).save(root / "labels" / f"{stem}.png")


def write_cityscapes_sample(
    root: Path, split: str, city: str, stem: str, image: np.ndarray,
    semantic: np.ndarray, instances: np.ndarray, instance_classes: dict[int, int],
) -> None:
    image_dir = root / "leftImg8bit" / split / city
    label_dir = root / "gtFine" / split / city
    _folders(image_dir, label_dir)
    label_ids = train_ids_to_label_ids(semantic)
    write_png(image_dir / f"{stem}_leftImg8bit.png", image)
    write_png(label_dir / f"{stem}_gtFine_labelIds.png", label_ids)
    write_png(label_dir / f"{stem}_gtFine_instanceIds.png", cityscapes_instance_ids(semantic, instances, instance_classes))
    write_png(label_dir / f"{stem}_gtFine_color.png", _LABEL_ID_PALETTE[label_ids])
