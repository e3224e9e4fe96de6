"""Readers of the Synthia, GTA5 and Cityscapes formats, the dataset index and the HDF5 cache."""

from __future__ import annotations

from pathlib import Path

from .base import DatasetReader, Sample, SampleFiles, resize_sample
from .cityscapes import CityscapesDataset
from .gta5 import GTA5Dataset
from .synthia import SynthiaDataset

READERS: dict[str, type[DatasetReader]] = {
    "synthia": SynthiaDataset,
    "gta5": GTA5Dataset,
    "cityscapes": CityscapesDataset,
}


def open_dataset(
    fmt: str, root: str | Path, split: str | None = None, size: tuple[int, int] | None = None
) -> DatasetReader:
    """Open the dataset at ``root`` with the reader of format ``fmt`` (synthia, gta5, cityscapes)."""
    try:
        reader = READERS[fmt]
    except KeyError:
        raise ValueError(f"unknown dataset format {fmt!r}; known: {', '.join(READERS)}") from None
    return reader(root, split=None if fmt != "cityscapes" else split, size=size)


__all__ = [
    "CityscapesDataset", "DatasetReader", "GTA5Dataset", "READERS", "Sample", "SampleFiles",
    "SynthiaDataset", "open_dataset", "resize_sample",
]
