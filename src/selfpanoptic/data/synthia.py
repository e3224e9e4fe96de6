"""Synthia RAND-CITYSCAPES: ``RGB/*.png`` and 16-bit ``GT/LABELS/*.png``.

Channel 0 of a label file holds the Synthia class id, channel 1 the instance id. As in the
real dataset, truck and train pixels may carry an instance id while their class is 0 (void):
they become ignore in the semantic labels but keep their instance ids.
"""

from __future__ import annotations

import numpy as np

from ..classes import MAX_SYNTHIA_ID, SYNTHIA_ID_TO_TRAIN_ID_LUT
from .. import pngio
from .base import DatasetReader, SampleFiles, check_id_range
from .listing import paired_files
from .problems import Problem

_VALID_SYNTHIA_IDS = np.arange(MAX_SYNTHIA_ID + 1) >= 0


class SynthiaDataset(DatasetReader):
    format = "synthia"
    layout_hint = "RGB/<id>.png and GT/LABELS/<id>.png (16-bit, class id in channel 0, instance id in channel 1)"

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
