"""The dataset index: one row per sample with its files, size and per-class statistics.

Building the index decodes every label file, so it is also where bad input is caught before any
long job: missing partner files, corrupt PNGs, ids out of range and image/label size mismatches
are all collected and reported together, grouped by kind (:mod:`.problems`). The dataset's
``unpaired`` and ``size_mismatch`` policies may let the first and last of these through.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from ..classes import CLASS_NAMES, IGNORE, THING_TRAIN_IDS
from ..errors import InputError
from ..segments import instance_majority_classes
from . import open_dataset
from .. import pngio
from .base import DatasetReader, fit_labels, size_mismatch_detail, unlabelled_arrays
from .parallel import ordered_map
from .problems import POLICIES, DatasetProblemsError, Problem, problem_from_error, warning_lines

FILE_COLUMNS = ["dataset", "format", "root", "split", "image_id", "image_path", "label_path", "instance_path"]
READER_COLUMNS = {"reader_options": "", "labelled": True}
"""Columns added after the first manifests, with the value that older manifests read as:
``reader_options`` (JSON of :func:`open_dataset`'s ``options``, "" for none) and ``labelled``
(False: the sample's split has no label files, its label statistics count all ignore)."""


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


@dataclass
class _Checked:
    """What checking one sample gave: its manifest row (None if left out) and its problems."""

    row: dict | None = None
    errors: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)


def _check_sample(reader: DatasetReader, index: int, size_mismatch: str) -> _Checked:
    """Decode both files of a sample, so that one bad file does not hide the other's problems."""
    files, checked = reader.files[index], _Checked()
    image = labels = None
    try:
        # Decode the whole image: a truncated file must fail here, not in the middle of training.
        image = pngio.read_rgb(files.image_path)
    except InputError as err:
        checked.errors.append(problem_from_error(err, files.image_path))
    if not files.labelled:
        if image is not None:
            labels, instances = unlabelled_arrays(image.shape[:2])
    else:
        try:
            labels, instances = reader.decode_labels(files)
        except InputError as err:
            checked.errors.append(problem_from_error(err, files.label_path))
    if image is None or labels is None:
        return checked
    resized = image.shape[:2] != labels.shape
    if resized:
        problem = Problem("size_mismatch", files.label_path,
                          size_mismatch_detail(labels.shape, image.shape[:2], files.image_path))
        if size_mismatch != "resize":
            (checked.errors if size_mismatch == "error" else checked.warnings).append(problem)
            return checked
        checked.warnings.append(problem)
        # As the cache will (DatasetReader.__getitem__): statistics count the label at the image's size.
        labels, instances = fit_labels(labels, instances, image.shape[:2])
    if checked.errors:
        return checked
    checked.row = {
        "image_id": files.image_id,
        "image_path": str(files.image_path),
        "label_path": "" if files.label_path is None else str(files.label_path),
        "instance_path": "" if files.instance_path is None else str(files.instance_path),
        "labelled": files.labelled,
        "label_resized": resized,
        "height": labels.shape[0],
        "width": labels.shape[1],
    }
    checked.row.update(label_statistics(labels, instances))
    return checked


def build_manifest(
    name: str, fmt: str, root: str | Path, split: str | None = None, threads: int = 1, progress: bool = True,
    unpaired: str = "error", size_mismatch: str = "error", options: dict | None = None,
) -> tuple[pd.DataFrame, list[Problem]]:
    """Index a dataset: one row per sample, checking every file of every sample on the way.

    Parameters
    ----------
    name:
        The dataset's name in the config (``synthia``, ``gta``, ``target``); messages name the
        dataset and its policy settings (``datasets.<name>.unpaired``) by it.
    fmt, root, split:
        The dataset's format, root folder and split (formats of :data:`SPLIT_FORMATS` only).
    threads:
        Worker processes checking samples (:func:`.parallel.ordered_map`); the result is the same.
    progress:
        Show a progress bar.
    unpaired:
        ``error`` or ``skip``: what happens to images without their label file(s) and label
        files without their image.
    size_mismatch:
        ``error``, ``skip`` or ``resize``: what happens to a label whose size differs from its
        image's; ``resize`` keeps the pair (``label_resized`` is true in its row), the label's
        statistics counted at the image's size, and the cache resizes it the same way.
    options:
        The reader's own options (``images``: ``glob``, ``labels``), recorded as JSON in the
        ``reader_options`` column.

    Returns
    -------
    manifest:
        One row per sample kept. A split without label files (see :mod:`.labelled`) keeps every
        image, with empty ``label_path``/``instance_path``, ``labelled`` False and all pixels
        counted as ignore.
    warnings:
        The files that a ``skip`` or ``resize`` policy let through, to be reported.

    Raises
    ------
    DatasetProblemsError
        Every problem found, grouped by kind, if any file cannot be used under the policies:
        unreadable files and ids out of range always are.
    """
    for key, value in (("unpaired", unpaired), ("size_mismatch", size_mismatch)):
        if value not in POLICIES[key]:
            raise InputError(f"unknown {key} policy {value!r}", None, f"use one of: {', '.join(POLICIES[key])}")
    reader = open_dataset(fmt, root, split, options=options)
    errors, warnings = [], []
    (errors if unpaired == "error" else warnings).extend(reader.unpaired)
    rows = _check_samples(reader, size_mismatch, threads, f"index {name}", progress, errors, warnings)
    shown = f"{name!r} ({fmt} at {root}" + (f", split {split!r})" if split else ")")
    if errors:
        left_out = len({w.path for w in warnings})
        raise DatasetProblemsError(shown, errors, name, reader.layout_hint, skipped=left_out,
                                   outcome="cannot be indexed", note="nothing was written")
    if not rows:
        lines = warning_lines(shown, warnings, {"unpaired": unpaired, "size_mismatch": size_mismatch}, name)
        raise InputError(
            "\n".join([f"dataset {shown}: no sample is left to index", *lines[1:]]), None,
            f"check that the dataset's root is the right folder ({reader.layout_hint})",
        )
    return _manifest_frame(rows, name, fmt, root, split, options), warnings


def _check_samples(reader: DatasetReader, size_mismatch: str, threads: int, desc: str, progress: bool,
                   errors: list[Problem], warnings: list[Problem]) -> list[dict]:
    """Check every sample of ``reader`` (in ``threads`` processes); returns the rows of the samples kept.

    Their problems are appended to ``errors`` and ``warnings``, in sample order, whatever ``threads``.
    """
    rows = []
    check = partial(_check_sample, reader, size_mismatch=size_mismatch)
    with ordered_map(check, range(len(reader)), threads) as results:
        for checked in tqdm(results, total=len(reader), desc=desc, disable=not progress, unit="img"):
            errors += checked.errors
            warnings += checked.warnings
            if checked.row is not None:
                rows.append(checked.row)
    return rows


def _manifest_frame(rows: list[dict], name: str, fmt: str, root: str | Path, split: str | None,
                    options: dict | None) -> pd.DataFrame:
    """The manifest of the sample ``rows``: the dataset's columns first, ``reader_options`` last."""
    frame = pd.DataFrame(rows)
    frame.insert(0, "dataset", name)
    frame.insert(1, "format", fmt)
    frame.insert(2, "root", str(root))
    frame.insert(3, "split", split or "all")
    frame["reader_options"] = json.dumps(options, sort_keys=True) if options else ""
    return frame


def read_manifest(path: str | Path) -> pd.DataFrame:
    """Read a manifest CSV written by :func:`build_manifest` (or by mixing).

    Raises :class:`InputError` naming the file when it is missing, not a CSV text file, or lacks
    a manifest's columns.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("manifest does not exist", path, "run `selfpanoptic index` (the index_dataset rule) first")
    try:
        frame = pd.read_csv(path, keep_default_na=False,
                            dtype={"image_id": str, "label_path": str, "instance_path": str, "reader_options": str})
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise InputError(f"not a dataset manifest: not a CSV file ({type(exc).__name__})", path,
                         "give the manifest CSV `selfpanoptic index` (or mix) writes") from None
    for column, value in READER_COLUMNS.items():
        if column not in frame.columns:
            frame[column] = value
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
    "FILE_COLUMNS", "INSTANCE_COLUMNS", "PIXEL_COLUMNS", "READER_COLUMNS", "build_manifest",
    "class_presence", "column_name", "label_statistics", "read_manifest",
]
