"""GTA5 (Playing for Data): ``images/*.png`` and ``labels/*.png`` holding Cityscapes labelIds.

GTA5 has no instance annotation: the instance map of every sample is all zeros.
"""

from __future__ import annotations

import numpy as np

from ..classes import label_ids_to_train_ids
from .. import pngio
from .base import DatasetReader, SampleFiles, check_id_range
from .cityscapes import VALID_LABEL_IDS
from .listing import paired_files


class GTA5Dataset(DatasetReader):
    format = "gta5"
    has_instances = False
    layout_hint = "images/<id>.png and labels/<id>.png (8-bit Cityscapes labelIds)"

    def list_files(self) -> list[SampleFiles]:
        return paired_files(
            self.format,
            self.root / "images",
            "*.png",
            lambda image: [self.root / "labels" / image.name],
            self.layout_hint,
        )

    def decode_labels(self, files: SampleFiles) -> tuple[np.ndarray, np.ndarray]:
        label_ids = pngio.read_single_channel(files.label_path)
        check_id_range(
            label_ids, VALID_LABEL_IDS, files.label_path, "Cityscapes labelId(s)",
            "GTA5 label files hold Cityscapes labelIds 0..33 (255 = void)",
        )
        labels = label_ids_to_train_ids(label_ids)
        return labels, np.zeros(labels.shape, dtype=np.int32)
