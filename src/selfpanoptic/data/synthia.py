"""Synthia RAND-CITYSCAPES: ``RGB/*.png`` and 16-bit ``GT/LABELS/*.png``.

Channel 0 of a label file holds the Synthia class id, channel 1 the instance id. As in the
real dataset, truck and train pixels may carry an instance id while their class is 0 (void):
they become ignore in the semantic labels but keep their instance ids.

Optional ``Depth/*.png`` files hold the depth in centimetres as 16-bit values in channel 0
(single-channel or 3-channel files); 0 marks an invalid pixel. They are read as inverse depth
in 1/m (``100 / value``, NaN where the value is 0).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..classes import MAX_SYNTHIA_ID, SYNTHIA_ID_TO_TRAIN_ID_LUT
from .. import pngio
from .base import DatasetReader, SampleFiles, check_id_range
from .listing import paired_files
from .problems import Problem

_VALID_SYNTHIA_IDS = np.arange(MAX_SYNTHIA_ID + 1) >= 0

DEPTH_UNITS_PER_M = 100.0
"""Synthia ``Depth/`` files store centimetres."""


def synthia_inverse_depth(depth_cm: np.ndarray) -> np.ndarray:
    """Inverse depth in 1/m, (H, W) float32, of raw ``Depth/`` values in centimetres; 0 gives NaN."""
    depth_cm = np.asarray(depth_cm, dtype=np.float32)
    with np.errstate(divide="ignore"):
        return np.where(depth_cm > 0, np.float32(DEPTH_UNITS_PER_M) / depth_cm, np.float32(np.nan)).astype(np.float32)


class SynthiaDataset(DatasetReader):
    format = "synthia"
    layout_hint = (
        "RGB/<id>.png and GT/LABELS/<id>.png (16-bit, class id in channel 0, instance id in channel 1); "
        "optionally Depth/<id>.png (16-bit, depth in cm in channel 0)"
    )

    def list_files(self) -> tuple[list[SampleFiles], list[Problem]]:
        labels = self.root / "GT" / "LABELS"
        return paired_files(
            self.format,
            self.root / "RGB",
            "*.png",
            lambda image: [labels / image.name],
            self.layout_hint,
            labels,
            "*.png",
            lambda label: self.root / "RGB" / label.name,
        )

    def decode_labels(self, files: SampleFiles) -> tuple[np.ndarray, np.ndarray]:
        raw = pngio.read_png16_channels(files.label_path)
        class_ids, instance_ids = raw[..., 0], raw[..., 1]
        check_id_range(
            class_ids, _VALID_SYNTHIA_IDS, files.label_path, "Synthia class id(s)",
            f"Synthia class ids are 0..{MAX_SYNTHIA_ID}; is this a Synthia RAND-CITYSCAPES label file?",
        )
        labels = SYNTHIA_ID_TO_TRAIN_ID_LUT[class_ids]
        return labels, instance_ids.astype(np.int32)

    def depth_path(self, files: SampleFiles) -> Path | None:
        """``Depth/<id>.png`` of the sample, if it exists."""
        path = self.root / "Depth" / files.image_path.name
        return path if path.is_file() else None

    def decode_inverse_depth(self, path: Path) -> np.ndarray:
        """(H, W) float32 inverse depth in 1/m of a ``Depth/`` file (``100 / cm``; NaN where 0)."""
        depth_cm = pngio.read_png16(
            path, "a 16-bit Synthia depth PNG",
            "Synthia Depth/ files store the depth in centimetres as 16-bit values in channel 0",
        )[..., 0]
        return synthia_inverse_depth(depth_cm)
