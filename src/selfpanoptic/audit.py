"""``selfpanoptic audit``: explain an HDF5 intermediate to a person.

Prints what the file is and where it came from (its provenance attributes), every dataset with
shape, type, chunking and compression, and, for label and instance stacks, class histograms,
the ignored fraction and instance counts per class.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

import h5py
import numpy as np

from .classes import CLASS_NAMES, IGNORE, NUM_CLASSES, THING_TRAIN_IDS
from .h5io import open_intermediate, provenance
from .segments import instance_majority_classes

BLOCK = 64
"""Images read per step when histogramming, to bound memory on large files."""


def label_histogram(labels: h5py.Dataset) -> tuple[np.ndarray, np.ndarray]:
    """Pixel count (256,) per label value and image count (256,) of images containing each value.

    labels: (N, H, W) uint8 stack; read BLOCK images at a time.
    """
    pixels = np.zeros(256, dtype=np.int64)
    images = np.zeros(256, dtype=np.int64)
    for start in range(0, labels.shape[0], BLOCK):
        block = labels[start : start + BLOCK]
        for item in block:
            counts = np.bincount(item.ravel(), minlength=256)
            pixels += counts
            images += counts > 0
    return pixels, images


def instance_counts(labels: h5py.Dataset, instances: h5py.Dataset) -> tuple[np.ndarray, int, int]:
    """Instances per majority class (256,), instances with only ignore pixels, and images with any instance."""
    per_class = np.zeros(256, dtype=np.int64)
    unlabelled = 0
    with_instances = 0
    for start in range(0, instances.shape[0], BLOCK):
        for lab, inst in zip(labels[start : start + BLOCK], instances[start : start + BLOCK]):
            ids, classes = instance_majority_classes(lab, inst)
            if len(ids) == 0:
                continue
            with_instances += 1
            unlabelled += int((classes == IGNORE).sum())
            per_class += np.bincount(classes[classes != IGNORE], minlength=256)
    return per_class, unlabelled, with_instances


def _describe_dataset(name: str, ds: h5py.Dataset) -> str:
    chunks = "x".join(map(str, ds.chunks)) if ds.chunks else "contiguous"
    comp = ds.compression or "none"
    desc = ds.attrs.get("description", "")
    return f"  {name:<14} {str(ds.shape):<22} {str(ds.dtype):<8} chunks {chunks:<16} {comp:<6} {desc}"


def _format_value(value: Any) -> str:
    if isinstance(value, (dict, list)):
        import json

        return json.dumps(value, sort_keys=True)
    return str(value)


def audit_lines(path: str | Path) -> Iterable[str]:
    """The lines of the audit report of ``path``."""
    with open_intermediate(path) as h5:
        info = provenance(h5)
        yield f"{path}"
        yield f"  stage: {info.get('stage', '?')}   created: {info.get('created', '?')}   " \
              f"selfpanoptic {info.get('package_version', '?')}"
        yield f"  config hash: {info.get('config_hash', '?')}"
        yield f"  config: {_format_value(info.get('config', {}))}"
        yield f"  inputs: {_format_value(info.get('inputs', []))}"
        yield ""
        yield "datasets:"
        for name, ds in h5.items():
            if isinstance(ds, h5py.Dataset):
                yield _describe_dataset(name, ds)
        if "datasets" in h5:
            names, counts = np.unique(h5["datasets"].asstr()[()], return_counts=True)
            yield ""
            yield "images per source dataset: " + ", ".join(f"{n}: {c}" for n, c in zip(names, counts))
        if "labels" in h5:
            labels = h5["labels"]
            pixels, images = label_histogram(labels)
            total = pixels.sum()
            unknown = [v for v in np.flatnonzero(pixels) if v >= NUM_CLASSES and v != IGNORE]
            yield ""
            yield f"label histogram ({labels.shape[0]} images, {total} pixels):"
            yield f"  {'class':<14} {'trainId':>7} {'pixels %':>9} {'images':>7}"
            for t, name in enumerate(CLASS_NAMES):
                yield f"  {name:<14} {t:>7} {100 * pixels[t] / max(total, 1):>9.3f} {images[t]:>7}"
            yield f"  {'ignore':<14} {IGNORE:>7} {100 * pixels[IGNORE] / max(total, 1):>9.3f} {images[IGNORE]:>7}"
            absent = [CLASS_NAMES[t] for t in range(NUM_CLASSES) if pixels[t] == 0]
            yield f"  classes absent: {', '.join(absent) if absent else 'none'}"
            if unknown:
                yield f"  WARNING: label values outside 0..18 and 255 present: {unknown}"
            if "instances" in h5:
                per_class, unlabelled, with_inst = instance_counts(labels, h5["instances"])
                yield ""
                yield f"instances ({with_inst} of {labels.shape[0]} images have any):"
                for t in THING_TRAIN_IDS:
                    yield f"  {CLASS_NAMES[t]:<14} {per_class[t]:>7}"
                yield f"  {'(ignore class)':<14} {unlabelled:>7}   instances whose pixels are all ignore"
