"""The dataset index: one row per sample with its files, size and per-class statistics.

Building the index decodes every label file, so it is also where bad input is caught before any
long job: missing label files, corrupt PNGs, ids out of range and image/label size mismatches
are all collected and reported together.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from ..classes import CLASS_NAMES, IGNORE, THING_TRAIN_IDS
from ..errors import BadFilesError, InputError
from ..segments import instance_majority_classes
from . import open_dataset
from .. import pngio
from .base import DatasetReader

FILE_COLUMNS = ["dataset", "format", "root", "split", "image_id", "image_path", "label_path", "instance_path"]


def column_name(prefix: str, class_name: str) -> str:
    """Manifest column of a class statistic, e.g. ``pixels_traffic_light``."""
    return f"{prefix}_{class_name.replace(' ', '_')}"


PIXEL_COLUMNS = [column_name("pixels", name) for name in CLASS_NAMES]
INSTANCE_COLUMNS = [column_name("instances", CLASS_NAMES[t]) for t in THING_TRAIN_IDS]


def label_statistics(labels: np.ndarray, instances: np.ndarray) -> dict[str, int]:
    """Per-class pixel counts and per-thing-class instance counts of one sample.

    labels: (H, W) uint8 trainIds (255 = ignore); instances: (H, W) int32 (0 = none).
    An instance counts for the class that covers most of its pixels; instances whose pixels are
    all ignore (Synthia's trucks and trains) count as ``instances_unlabelled``.
    """
    pixels = np.bincount(labels.ravel(), minlength=256)
    stats = {col: int(pixels[t]) for t, col in enumerate(PIXEL_COLUMNS)}
    stats["pixels_ignore"] = int(pixels[IGNORE])
    counts = dict.fromkeys(INSTANCE_COLUMNS, 0)
    _, classes = instance_majority_classes(labels, instances)
    counts["instances_unlabelled"] = int((classes == IGNORE).sum())
    for cls in classes[np.isin(classes, THING_TRAIN_IDS)]:
        counts[column_name("instances", CLASS_NAMES[cls])] += 1
    stats.update(counts)
    return stats


def _index_row(reader: DatasetReader, index: int) -> dict:
    files = reader.files[index]
    labels, instances = reader.read_labels(index)
    # Decode the whole image too: a truncated file must fail here, not in the middle of training.
    image = pngio.read_rgb(files.image_path)
    if image.shape[:2] != labels.shape:
        raise InputError(
            f"image size does not match its label file {files.label_path}", files.image_path,
            "image and label files of a sample must have the same width and height",
        )
    row = {
        "image_id": files.image_id,
        "image_path": str(files.image_path),
        "label_path": str(files.label_path),
        "instance_path": "" if files.instance_path is None else str(files.instance_path),
        "height": labels.shape[0],
        "width": labels.shape[1],
    }
    row.update(label_statistics(labels, instances))
    return row


def build_manifest(
    name: str, fmt: str, root: str | Path, split: str | None = None, threads: int = 1, progress: bool = True
) -> pd.DataFrame:
    """Index a dataset: one row per sample, checking every file on the way.

    Raises :class:`BadFilesError` listing every unusable file if any is found.
    """
    reader = open_dataset(fmt, root, split)
    rows, problems = [], []

    def safe_row(index: int):
        try:
            return _index_row(reader, index)
        except InputError as err:
            return err

    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        results = pool.map(safe_row, range(len(reader)))
        for result in tqdm(results, total=len(reader), desc=f"index {name}", disable=not progress, unit="img"):
            (problems if isinstance(result, InputError) else rows).append(result)
    if problems:
        raise BadFilesError(name, problems)
    frame = pd.DataFrame(rows)
    frame.insert(0, "dataset", name)
    frame.insert(1, "format", fmt)
    frame.insert(2, "root", str(root))
    frame.insert(3, "split", split or "all")
    return frame


def read_manifest(path: str | Path) -> pd.DataFrame:
    """Read a manifest CSV written by :func:`build_manifest` (or by mixing)."""
    path = Path(path)
    if not path.is_file():
        raise InputError("manifest does not exist", path, "run `selfpanoptic index` (the index_dataset rule) first")
    frame = pd.read_csv(path, keep_default_na=False, dtype={"image_id": str, "instance_path": str})
    missing = [c for c in FILE_COLUMNS + PIXEL_COLUMNS if c not in frame.columns]
    if missing:
        raise InputError(f"not a dataset manifest (missing columns {missing})", path, "rebuild it with `selfpanoptic index`")
    return frame


def class_presence(manifest: pd.DataFrame, min_pixels: int = 1) -> pd.DataFrame:
    """Boolean table (images x classes): does each image have at least ``min_pixels`` of each class."""
    return pd.DataFrame(
        {name: manifest[column_name("pixels", name)] >= min_pixels for name in CLASS_NAMES},
        index=manifest.index,
    )


__all__ = [
    "FILE_COLUMNS", "INSTANCE_COLUMNS", "PIXEL_COLUMNS", "build_manifest",
    "class_presence", "column_name", "label_statistics", "read_manifest",
]
