"""Ground truth at its own resolution: the labels of an index manifest's samples, one image per read.

Training works at the working resolution (the cache), but scores that papers can be compared
with are computed at the resolution of the ground-truth files, as the official Cityscapes
scripts do. This reader decodes each listed label file with its dataset's reader (the same
decoding that built the cache), without any resizing; a label the index let through under
``size_mismatch: resize`` is brought to its image's size (nearest), as everywhere else.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InputError
from .base import SampleFiles, fit_labels
from .manifest import read_manifest

__all__ = ["GroundTruth", "uniform_size"]


class GroundTruth:
    """The labelled samples of an index manifest, read at the files' own resolution.

    Parameters
    ----------
    manifest:
        An index manifest CSV (``selfpanoptic index``) of one split, e.g.
        ``results/data/index/target_val.csv``.

    Attributes
    ----------
    image_ids:
        The samples' ids, in manifest order.
    """

    def __init__(self, manifest: str | Path):
        from . import open_dataset

        self.path = Path(manifest)
        self.rows: pd.DataFrame = read_manifest(self.path)
        unlabelled = self.rows[self.rows["label_path"].astype(str) == ""]
        if len(unlabelled):
            raise InputError(
                f"{len(unlabelled)} of {len(self.rows)} images have no label file "
                f"(e.g. {unlabelled['image_id'].iloc[0]}), so they cannot be scored", self.path,
                "evaluate a split whose images all have ground truth",
            )
        self.image_ids: list[str] = self.rows["image_id"].astype(str).tolist()
        self._readers = {
            key: open_dataset(key[0], key[1], None if key[2] == "all" else key[2],
                              options=json.loads(key[3]) if key[3] else None)
            for key in self.rows.groupby(["format", "root", "split", "reader_options"], sort=False).groups
        }

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def size(self) -> tuple[int, int]:
        """``(height, width)`` in pixels shared by every sample (:func:`uniform_size`)."""
        return uniform_size(self.rows, self.path)

    def read(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Sample ``index``'s ground truth: ``(labels (H, W) uint8 trainIds, 255 = ignore,
        instances (H, W) int32, 0 = none)`` at the size the manifest lists for it."""
        row = self.rows.iloc[index]
        reader = self._readers[row["format"], row["root"], row["split"], row["reader_options"]]
        files = SampleFiles(str(row["image_id"]), Path(row["image_path"]), Path(row["label_path"]),
                            Path(row["instance_path"]) if row["instance_path"] else None)
        labels, instances = reader.decode_labels(files)
        size = (int(row["height"]), int(row["width"]))
        if labels.shape != size:
            labels, instances = fit_labels(labels, instances, size)
        return labels, instances

    def image_path(self, index: int) -> Path:
        """Sample ``index``'s image file."""
        return Path(self.rows.iloc[index]["image_path"])


def uniform_size(manifest: pd.DataFrame, path: str | Path) -> tuple[int, int]:
    """``(height, width)`` in pixels shared by every sample of a manifest read from ``path``.

    Raises
    ------
    InputError
        When the samples differ in size: a split's predictions at its files' resolution are
        stored as one stack. The message lists each size with its count and one of its files.
    """
    groups = manifest.groupby(["height", "width"], sort=False)
    if groups.ngroups != 1:
        shown = ", ".join(f"{w}x{h} ({len(rows)} image{'s' * (len(rows) > 1)}, e.g. {Path(rows['image_path'].iloc[0]).name})"
                          for (h, w), rows in sorted(groups, key=lambda item: -len(item[1]))[:4])
        raise InputError(f"the images of this split differ in size: {shown}", path,
                         "give this split images of one size (as Cityscapes' are): it is predicted and scored at "
                         "its files' resolution; predict-panoptic takes images of any size")
    height, width = manifest[["height", "width"]].iloc[0]
    return int(height), int(width)
