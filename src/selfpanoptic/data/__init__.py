"""Readers of the Synthia, GTA5 and Cityscapes formats and of image folders, the dataset index and the HDF5 cache."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .base import DatasetReader, Sample, SampleFiles, resize_sample
from .cityscapes import CityscapesDataset
from .gta5 import GTA5Dataset
from .images import ImageFolderDataset
from .labelled import target_split_labelled
from .synthia import SynthiaDataset

READERS: dict[str, type[DatasetReader]] = {
    "synthia": SynthiaDataset,
    "gta5": GTA5Dataset,
    "cityscapes": CityscapesDataset,
    "images": ImageFolderDataset,
}

SPLIT_FORMATS = ("cityscapes", "images")
"""Formats read one split at a time (the others ignore ``split``)."""


def open_dataset(
    fmt: str, root: str | Path, split: str | None = None, size: tuple[int, int] | None = None,
    options: dict[str, Any] | None = None,
) -> DatasetReader:
    """Open the dataset at ``root`` with the reader of format ``fmt`` (a key of :data:`READERS`).

    ``options``: the reader's own keyword arguments (``images``: ``glob`` and ``labels``);
    the index records them in the manifest's ``reader_options`` so that the cache reopens the
    same files.
    """
    try:
        reader = READERS[fmt]
    except KeyError:
        raise ValueError(f"unknown dataset format {fmt!r}; known: {', '.join(READERS)}") from None
    return reader(root, split=split if fmt in SPLIT_FORMATS else None, size=size, **(options or {}))


__all__ = [
    "CityscapesDataset", "DatasetReader", "GTA5Dataset", "ImageFolderDataset", "READERS", "SPLIT_FORMATS",
    "Sample", "SampleFiles", "SynthiaDataset", "open_dataset", "resize_sample", "target_split_labelled",
]
