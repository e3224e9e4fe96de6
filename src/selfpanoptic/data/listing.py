"""Listing a dataset's image files and pairing each with its label files."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from ..errors import InputError
from .base import SampleFiles
from .problems import Problem


def paired_files(
    dataset_format: str,
    image_dir: Path,
    pattern: str,
    label_files_of: Callable[[Path], list[Path]],
    layout_hint: str,
    label_dir: Path,
    label_pattern: str,
    image_of_label: Callable[[Path], Path],
) -> tuple[list[SampleFiles], list[Problem]]:
    """The complete samples of a dataset, and the files that lack their partner.

    Parameters
    ----------
    dataset_format:
        The format's name, for messages.
    image_dir, pattern:
        Every image is ``image_dir.glob(pattern)``.
    label_files_of:
        ``label_files_of(image)`` gives the image's ``[label]`` or ``[label, instances]``.
    layout_hint:
        The format's folder layout, for messages.
    label_dir, label_pattern:
        Every (main) label file is ``label_dir.glob(label_pattern)``.
    image_of_label:
        ``image_of_label(label)`` gives the image a label file belongs to.

    Returns
    -------
    samples:
        The images (sorted) whose label files all exist.
    unpaired:
        A ``missing_label`` problem per image that lacks a label file and a ``missing_image``
        problem per label file without its image. Listing never raises for them: whether they
        are an error is the index's policy (``unpaired``).
    """
    if not image_dir.is_dir():
        raise InputError(
            f"image folder of this {dataset_format} dataset is missing",
            image_dir,
            f"the dataset root must be laid out as {layout_hint}",
        )
    images = sorted(image_dir.glob(pattern))
    samples, unpaired = [], []
    for image in images:
        labels = label_files_of(image)
        missing = [label for label in labels if not label.is_file()]
        if missing:
            unpaired.append(Problem("missing_label", image, "no label file " + " and no ".join(map(str, missing))))
            continue
        image_id = image.name[: -len("_leftImg8bit.png")] if image.name.endswith("_leftImg8bit.png") else image.stem
        samples.append(SampleFiles(image_id, image, labels[0], labels[1] if len(labels) > 1 else None))
    known = set(images)
    for label in sorted(label_dir.glob(label_pattern)) if label_dir.is_dir() else []:
        image = image_of_label(label)
        if image not in known:
            unpaired.append(Problem("missing_image", label, f"no image {image}"))
    return samples, unpaired
