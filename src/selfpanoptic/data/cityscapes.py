"""Cityscapes: ``leftImg8bit/<split>/<city>/*_leftImg8bit.png`` with ``gtFine`` labelIds and instanceIds.

Instance ids follow :mod:`selfpanoptic.formats.cityscapes_ids`: things are ``labelId * 1000 + k``;
values below 1000 are stuff or thing regions without an instance. Instances of classes outside
the 19 (caravan, trailer) are dropped. A split without any ``gtFine`` label file is read
unlabelled (:mod:`.labelled`): its images with labels all ignore.

Optional ``disparity/<split>/<city>/*_disparity.png`` files (16-bit, one channel) hold
``p = disparity * 256 + 1`` with 0 = invalid. They are read as inverse depth in 1/m,
``disparity / (baseline * fx)`` with the stereo rig's :data:`CITYSCAPES_BASELINE_M` and the focal
length :func:`cityscapes_focal_px` scaled to the file's width; invalid pixels are NaN.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..classes import MAX_LABEL_ID, THING_TRAIN_IDS, label_ids_to_train_ids
from .. import pngio
from ..errors import InputError
from ..formats.cityscapes_ids import decode_instance_ids
from .base import DatasetReader, SampleFiles, check_id_range
from .labelled import has_label_files
from .listing import paired_files
from .problems import DataFileError, Problem

VALID_LABEL_IDS = np.zeros(256, dtype=bool)
VALID_LABEL_IDS[: MAX_LABEL_ID + 1] = True
VALID_LABEL_IDS[255] = True  # some exports store the license plate (labelId -1) as 255

IMAGE_SUFFIX = "_leftImg8bit.png"
LABEL_SUFFIX = "_gtFine_labelIds.png"
DISPARITY_SUFFIX = "_disparity.png"

# The Cityscapes stereo camera, from the dataset's camera calibration files
# (camera/<split>/<city>/*_camera.json: extrinsic.baseline and intrinsic.fx, for the
# 2048 x 1024 images). Some cities' files differ slightly; one value is used for all.
CITYSCAPES_BASELINE_M = 0.209313
"""Stereo baseline in metres."""
CITYSCAPES_FX_PX = 2262.52
"""Focal length in pixels at the native width :data:`CITYSCAPES_WIDTH_PX`."""
CITYSCAPES_WIDTH_PX = 2048
"""Width of Cityscapes' own images, at which :data:`CITYSCAPES_FX_PX` holds."""


def cityscapes_focal_px(width: int) -> float:
    """Focal length in pixels of an image ``width`` pixels wide (Cityscapes' scaled to that width)."""
    return CITYSCAPES_FX_PX * width / CITYSCAPES_WIDTH_PX


def disparity_to_inverse_depth(raw: np.ndarray) -> np.ndarray:
    """Inverse depth in 1/m, (H, W) float32, of raw ``*_disparity.png`` values.

    ``p = 0`` is invalid (NaN); otherwise the disparity is ``d = (p - 1) / 256`` pixels and the
    inverse depth ``d / (baseline * fx)``, fx scaled to the file's width (``raw.shape[1]``).
    """
    raw = np.asarray(raw)
    disparity = (raw.astype(np.float64) - 1.0) / 256.0
    inverse_depth = disparity / (CITYSCAPES_BASELINE_M * cityscapes_focal_px(raw.shape[1]))
    return np.where(raw > 0, inverse_depth, np.nan).astype(np.float32)


def read_label_id_png(path, fix: str) -> np.ndarray:
    """Read a PNG of Cityscapes labelIds (gtFine labelIds, GTA5 labels) as trainIds, checking the id range."""
    label_ids = pngio.read_single_channel(path)
    check_id_range(label_ids, VALID_LABEL_IDS, path, "Cityscapes labelId(s)", fix)
    return label_ids_to_train_ids(label_ids)


def decode_gtfine(label_path: Path, instance_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Decode a gtFine pair (``*_labelIds.png``, ``*_instanceIds.png``) at the files' own size.

    Returns
    -------
    labels:
        (H, W) uint8 trainIds, 255 = ignore.
    instances:
        (H, W) int32 instance ids (``labelId * 1000 + k``) of the 19 classes' things, 0 elsewhere.

    Raises
    ------
    InputError
        A file cannot be decoded, holds labelIds out of range, or the two sizes differ.
    """
    labels = read_label_id_png(label_path, "gtFine *_labelIds.png files hold Cityscapes labelIds 0..33")
    raw = pngio.read_single_channel(instance_path).astype(np.int32)
    if raw.shape != labels.shape:
        raise DataFileError(
            "instance_size",
            f"instance map size {raw.shape[1]}x{raw.shape[0]} differs from {label_path}",
            instance_path,
            "labelIds and instanceIds files of a sample must have the same size",
        )
    is_thing = np.isin(labels, THING_TRAIN_IDS)
    _, k = decode_instance_ids(raw)
    instances = np.where((k >= 0) & is_thing, raw, 0).astype(np.int32)
    return labels, instances


class CityscapesDataset(DatasetReader):
    format = "cityscapes"
    layout_hint = (
        "leftImg8bit/<split>/<city>/<name>_leftImg8bit.png and "
        "gtFine/<split>/<city>/<name>_gtFine_labelIds.png + _gtFine_instanceIds.png; "
        "optionally disparity/<split>/<city>/<name>_disparity.png (16-bit, disparity * 256 + 1, 0 = invalid)"
    )

    def splits(self) -> list[str]:
        """The splits present under ``leftImg8bit/``, sorted."""
        folder = self.root / "leftImg8bit"
        return sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []

    def _choose_split(self) -> str:
        found = ", ".join(self.splits()) or f"none (no folder {self.root / 'leftImg8bit'})"
        # The index and the workflow are where a split is chosen, so the fix names their settings.
        where = "(`--split` of `selfpanoptic index`; `datasets.target.train_split`/`val_split` in the config)"
        return f"choose one of the splits found, {found} {where}"

    def list_files(self) -> tuple[list[SampleFiles], list[Problem]]:
        if self.split is None:
            raise InputError("Cityscapes is read one split at a time, but no split was given", self.root,
                             self._choose_split())
        image_dir = self.root / "leftImg8bit" / self.split
        if not image_dir.is_dir():
            raise InputError(f"split {self.split!r} not found", image_dir, self._choose_split())
        label_dir = self.root / "gtFine" / self.split
        if not has_label_files(label_dir):
            # An unlabelled split (see .labelled): every image, read as all ignore.
            images = sorted(image_dir.glob(f"*/*{IMAGE_SUFFIX}"))
            return [SampleFiles(image.name[: -len(IMAGE_SUFFIX)], image, None) for image in images], []

        def label_files(image):
            stem = image.name[: -len(IMAGE_SUFFIX)]
            folder = label_dir / image.parent.name
            return [folder / f"{stem}{LABEL_SUFFIX}", folder / f"{stem}_gtFine_instanceIds.png"]

        def image_of_label(label):
            return image_dir / label.parent.name / (label.name[: -len(LABEL_SUFFIX)] + IMAGE_SUFFIX)

        return paired_files(self.format, image_dir, f"*/*{IMAGE_SUFFIX}", label_files, self.layout_hint,
                            label_dir, f"*/*{LABEL_SUFFIX}", image_of_label)

    def decode_labels(self, files: SampleFiles) -> tuple[np.ndarray, np.ndarray]:
        return decode_gtfine(files.label_path, files.instance_path)

    def depth_path(self, files: SampleFiles) -> Path | None:
        """``disparity/<split>/<city>/<name>_disparity.png`` of the sample, if it exists."""
        stem = files.image_path.name[: -len(IMAGE_SUFFIX)]
        path = self.root / "disparity" / self.split / files.image_path.parent.name / f"{stem}{DISPARITY_SUFFIX}"
        return path if path.is_file() else None

    def decode_inverse_depth(self, path: Path) -> np.ndarray:
        """(H, W) float32 inverse depth in 1/m of a ``*_disparity.png`` (NaN where p = 0)."""
        raw = pngio.read_png16(
            path, "a 16-bit single-channel disparity PNG",
            "Cityscapes disparity files store disparity * 256 + 1 as 16-bit grey values (0 = invalid)",
        )[..., 0]
        return disparity_to_inverse_depth(raw)
