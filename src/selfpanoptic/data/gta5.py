"""GTA5 (Playing for Data): ``images/*.png`` and ``labels/*.png`` holding Cityscapes labelIds.

GTA5 has no instance annotation: the instance map of every sample is all zeros.
"""

from __future__ import annotations

import numpy as np

from .base import DatasetReader, SampleFiles
from .cityscapes import read_label_id_png
from .listing import paired_files
from .problems import Problem


class GTA5Dataset(DatasetReader):
    format = "gta5"
    has_instances = False
    layout_hint = "images/<id>.png and labels/<id>.png (8-bit Cityscapes labelIds)"

    def list_files(self) -> tuple[list[SampleFiles], list[Problem]]:
        # The real GTA5 lists 24,966 frames but has 24,941 image-label pairs: the index's
        # `unpaired` policy decides about the rest.
        return paired_files(
            self.format,
            self.root / "images",
            "*.png",
            lambda image: [self.root / "labels" / image.name],
            self.layout_hint,
            self.root / "labels",
            "*.png",
            lambda label: self.root / "images" / label.name,
        )

    def decode_labels(self, files: SampleFiles) -> tuple[np.ndarray, np.ndarray]:
        labels = read_label_id_png(files.label_path, "GTA5 label files hold Cityscapes labelIds 0..33 (255 = void)")
        return labels, np.zeros(labels.shape, dtype=np.int32)
