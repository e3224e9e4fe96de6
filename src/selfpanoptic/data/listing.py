"""Listing a dataset's image files and pairing each with its label files."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from ..errors import BadFilesError, InputError
from .base import SampleFiles


def paired_files(
    dataset_format: str,
    image_dir: Path,
    pattern: str,
    label_files_of: Callable[[Path], list[Path]],
    layout_hint: str,
) -> list[SampleFiles]:
    """Every image under ``image_dir`` matching ``pattern`` (sorted), with its label files.

    ``label_files_of(image)`` gives [label] or [label, instances]. Images whose label files are
    missing are all reported in one :class:`BadFilesError`.
    """
    if not image_dir.is_dir():
        raise InputError(
            f"image folder of this {dataset_format} dataset is missing",
            image_dir,
            f"the dataset root must be laid out as {layout_hint}",
        )
    samples, missing = [], []
    for image in sorted(image_dir.glob(pattern)):
        labels = label_files_of(image)
        for label in labels:
            if not label.is_file():
                missing.append(InputError(f"label file for image {image.name} is missing", label))
        image_id = image.name[: -len("_leftImg8bit.png")] if image.name.endswith("_leftImg8bit.png") else image.stem
        samples.append(SampleFiles(image_id, image, labels[0], labels[1] if len(labels) > 1 else None))
    if missing:
        raise BadFilesError(
            dataset_format, missing, f"every image needs its label file(s): {layout_hint}"
        )
    return samples
