"""Writing one toy scene in each real dataset's file format.

The inverse of the readers in :mod:`selfpanoptic.data`: a scene's trainId labels and instance
indices become Synthia class/instance channels, GTA5 labelId palette PNGs, or Cityscapes
labelIds/instanceIds/color PNGs, exactly as the real datasets store them. A scene's depth
(metres) becomes Synthia ``Depth/`` centimetres or a Cityscapes ``disparity/`` file; GTA5 has no
depth.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from cityscapesscripts.helpers.labels import id2label
from PIL import Image

from ..classes import TRAIN_ID_TO_SYNTHIA_ID, class_id, train_ids_to_label_ids
from ..data.cityscapes import CITYSCAPES_BASELINE_M, DISPARITY_SUFFIX, cityscapes_focal_px
from ..data.synthia import DEPTH_UNITS_PER_M
from ..formats.cityscapes_ids import encode_instance_ids
from ..pngio import write_png
from .scenes.codes import SKY_DEPTH_M

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


def synthia_depth_png(depth: np.ndarray) -> np.ndarray:
    """(H, W) uint16 ``Depth/`` content of a depth map: ``clip(round(depth * 100), 1, 65535)`` centimetres.

    depth: (H, W) float metres from the camera; the sky (SKY_DEPTH_M) saturates at 65535.
    NaN (unknown) is written as 0, Synthia's invalid value.
    """
    depth = np.asarray(depth, dtype=np.float64)
    centimetres = np.clip(np.round(np.nan_to_num(depth, nan=0.0) * DEPTH_UNITS_PER_M), 1, 65535)
    return np.where(np.isnan(depth), 0, centimetres).astype(np.uint16)


def cityscapes_disparity_png(depth: np.ndarray) -> np.ndarray:
    """(H, W) uint16 ``*_disparity.png`` content of a depth map: ``clip(round(d * 256 + 1), 1, 65535)``.

    depth: (H, W) float metres from the camera. The disparity ``d = baseline * fx / depth``
    pixels uses Cityscapes' camera with fx scaled to the map's width. Pixels at or beyond
    SKY_DEPTH_M (the sky), or not finite, are infinitely far: ``d = 0``, written as 1.
    """
    depth = np.asarray(depth, dtype=np.float64)
    near = depth < SKY_DEPTH_M  # False for the sky and for NaN / inf
    scale = CITYSCAPES_BASELINE_M * cityscapes_focal_px(depth.shape[1])
    with np.errstate(divide="ignore", invalid="ignore"):
        disparity = np.where(near, scale / np.where(near, depth, 1.0), 0.0)
    return np.clip(np.round(disparity * 256 + 1), 1, 65535).astype(np.uint16)


def label_id_palette_image(label_ids: np.ndarray) -> Image.Image:
    """A palette PNG whose indices are the labelIds and whose colours are Cityscapes' (as GTA5 ships)."""
    image = Image.fromarray(label_ids.astype(np.uint8), mode="P")
    image.putpalette(_LABEL_ID_PALETTE.ravel().tolist())
    return image


def _folders(*folders: Path) -> None:
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)


def write_synthia_sample(
    root: Path, stem: str, image: np.ndarray, semantic: np.ndarray, instances: np.ndarray,
    depth: np.ndarray | None = None,
) -> None:
    """Write ``RGB/<stem>.png``, ``GT/LABELS/<stem>.png`` and, if ``depth`` is given, ``Depth/<stem>.png``.

    Parameters
    ----------
    image:
        (H, W, 3) uint8 RGB.
    semantic:
        (H, W) uint8 trainIds.
    instances:
        (H, W) int32 instance indices, 0 = none.
    depth:
        (H, W) float32 metres from the camera, or None to write no depth file; written as
        16-bit centimetres (:func:`synthia_depth_png`).
    """
    _folders(root / "RGB", root / "GT" / "LABELS")
    write_png(root / "RGB" / f"{stem}.png", image)
    write_png(root / "GT" / "LABELS" / f"{stem}.png", synthia_label_channels(semantic, instances))
    if depth is not None:
        _folders(root / "Depth")
        write_png(root / "Depth" / f"{stem}.png", synthia_depth_png(depth))


def write_gta5_sample(root: Path, stem: str, image: np.ndarray, semantic: np.ndarray) -> None:
    _folders(root / "images", root / "labels")
    write_png(root / "images" / f"{stem}.png", image)
    label_id_palette_image(train_ids_to_label_ids(semantic)).save(root / "labels" / f"{stem}.png")


def write_cityscapes_sample(
    root: Path, split: str, city: str, stem: str, image: np.ndarray,
    semantic: np.ndarray, instances: np.ndarray, instance_classes: dict[int, int],
    depth: np.ndarray | None = None,
) -> None:
    """Write a sample's ``leftImg8bit`` image, ``gtFine`` files and, if ``depth`` is given, its disparity file.

    Parameters
    ----------
    image:
        (H, W, 3) uint8 RGB.
    semantic:
        (H, W) uint8 trainIds.
    instances:
        (H, W) int32 instance indices, 0 = none.
    instance_classes:
        Instance index -> trainId.
    depth:
        (H, W) float32 metres from the camera, or None to write no disparity file; written as
        ``disparity/<split>/<city>/<stem>_disparity.png`` (:func:`cityscapes_disparity_png`).
    """
    image_dir = root / "leftImg8bit" / split / city
    label_dir = root / "gtFine" / split / city
    _folders(image_dir, label_dir)
    label_ids = train_ids_to_label_ids(semantic)
    write_png(image_dir / f"{stem}_leftImg8bit.png", image)
    write_png(label_dir / f"{stem}_gtFine_labelIds.png", label_ids)
    write_png(label_dir / f"{stem}_gtFine_instanceIds.png", cityscapes_instance_ids(semantic, instances, instance_classes))
    write_png(label_dir / f"{stem}_gtFine_color.png", _LABEL_ID_PALETTE[label_ids])
    if depth is not None:
        disparity_dir = root / "disparity" / split / city
        _folders(disparity_dir)
        write_png(disparity_dir / f"{stem}{DISPARITY_SUFFIX}", cityscapes_disparity_png(depth))
