"""GTA5 (Playing for Data): ``images/*.png`` and ``labels/*.png`` holding Cityscapes labelIds.

GTA5 has no instance annotation: the instance map of every sample is all zeros.
"""

from __future__ import annotations

import numpy as np

from .base import DatasetReader, SampleFiles
from .cityscapes import read_label_id_png
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
        labels = read_label_id_png(files.label_path, "GTA5 label files hold Cityscapes labelIds 0..33 (255 = void)")
        return labels, np.zeros(labels.shape, dtype=np.int32)
