"""Explanations of HDF5 intermediates for a person (what ``selfpanoptic audit`` prints).

Prints what the file is and where it came from (its provenance attributes), every dataset with
shape, type, chunking and compression, and, for label and instance stacks, class histograms,
the ignored fraction and instance counts per class. Grading against a ground-truth cache of an
unlabelled split is replaced by one line saying it could not be graded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

import h5py
import numpy as np

from .classes import CLASS_NAMES, IGNORE, NUM_CLASSES, THING_TRAIN_IDS
from .h5io import provenance, read_strings
from .intermediates import DatasetCache, open_any
from .pseudo.grading import match_instances, precision, semantic_grade_counts
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


def _pct(value: float) -> str:
    return "      -" if np.isnan(value) else f"{100 * value:>7.1f}"


def semantic_grade_lines(h5: h5py.File, gt: h5py.File) -> Iterable[str]:
    """Per-class precision of semantic (pseudo-)labels against ``gt``'s labels."""
    has_argmax = "argmax" in h5
    stacks = [("labels", "kept")] + ([("labels_before_guidance", "unguided")] if "labels_before_guidance" in h5 else [])
    totals = {name: np.zeros((NUM_CLASSES, 4), dtype=np.int64) for name, _ in stacks}
    valid = ignored = 0
    n = h5["labels"].shape[0]
    for start in range(0, n, BLOCK):
        truth = gt["labels"][start : start + BLOCK]
        argmax = h5["argmax"][start : start + BLOCK] if has_argmax else None
        for name, _ in stacks:
            labels = h5[name][start : start + BLOCK]
            totals[name] += semantic_grade_counts(labels, argmax if has_argmax else labels, truth)
        labels = h5["labels"][start : start + BLOCK]
        valid += int((truth != IGNORE).sum())
        ignored += int(((labels == IGNORE) & (truth != IGNORE)).sum())
    kept = totals["labels"]
    yield ""
    yield f"graded against ground truth ({n} images, {valid} labelled pixels):"
    header = f"  {'class':<14} {'kept %':>7} {'prec %':>7}"
    if has_argmax:
        header += f" {'argmax prec %':>14}"
    if len(stacks) > 1:
        header += f" {'unguided kept %':>16} {'unguided prec %':>16}"
    yield header
    for t, name in enumerate(CLASS_NAMES):
        row = f"  {name:<14} {_pct(precision(kept[t, 0], max(kept[t, 2], 1)) if has_argmax else np.nan)} " \
              f"{_pct(precision(kept[t, 1], kept[t, 0]))}"
        if has_argmax:
            row += f" {_pct(precision(kept[t, 3], kept[t, 2])):>14}"
        if len(stacks) > 1:
            unguided = totals["labels_before_guidance"]
            unguided_kept = precision(unguided[t, 0], max(kept[t, 2], 1)) if has_argmax else np.nan
            row += f" {_pct(unguided_kept):>16} {_pct(precision(unguided[t, 1], unguided[t, 0])):>16}"
        yield row
    summary = f"  all pixels: precision of kept labels {_pct(precision(kept[:, 1].sum(), kept[:, 0].sum())).strip()} %"
    if has_argmax:
        summary += f", of the raw argmax {_pct(precision(kept[:, 3].sum(), kept[:, 2].sum())).strip()} %"
    yield summary
    yield f"  ignored (below threshold): {100 * ignored / max(valid, 1):.1f} % of labelled pixels"


def instance_grade_lines(h5: h5py.File, gt: h5py.File, iou_threshold: float = 0.5) -> Iterable[str]:
    """True- and false-positive (pseudo) instances per class at IoU >= 0.5 against ``gt``'s instances."""
    segments = h5["segments"][()]
    tp = np.zeros(NUM_CLASSES, dtype=np.int64)
    fp = np.zeros(NUM_CLASSES, dtype=np.int64)
    gt_count = np.zeros(NUM_CLASSES, dtype=np.int64)
    for i in range(h5["instances"].shape[0]):
        rows = segments[segments[:, 0] == i]
        pred_classes = {int(r[1]): int(r[2]) for r in rows}
        gt_ids, gt_cls = instance_majority_classes(gt["labels"][i], gt["instances"][i])
        gt_classes = {int(k): int(c) for k, c in zip(gt_ids, gt_cls) if c != IGNORE}
        gt_count += np.bincount(list(gt_classes.values()), minlength=256)[:NUM_CLASSES]
        for cls, _, hit in match_instances(h5["instances"][i], pred_classes, gt["instances"][i], gt_classes, iou_threshold):
            (tp if hit else fp)[cls] += 1
    yield ""
    yield f"graded against ground-truth instances (IoU >= {iou_threshold}):"
    yield f"  {'class':<14} {'TP':>6} {'FP':>6} {'GT':>6} {'prec %':>7}"
    for t in THING_TRAIN_IDS:
        yield f"  {CLASS_NAMES[t]:<14} {tp[t]:>6} {fp[t]:>6} {gt_count[t]:>6} {_pct(precision(tp[t], tp[t] + fp[t]))}"
    yield f"  {'all':<14} {tp.sum():>6} {fp.sum():>6} {gt_count.sum():>6} {_pct(precision(tp.sum(), tp.sum() + fp.sum()))}"


def grade_lines(h5: h5py.File, ground_truth: str | Path) -> Iterable[str]:
    """Grades of a prediction or pseudo-label file against the cache ``ground_truth`` of the same images."""
    ids = read_strings(h5, "image_ids") if "image_ids" in h5 else []
    fix = "give the dataset cache the file was made from (e.g. results/data/cache/target_train.h5)"
    with DatasetCache.open(ground_truth, ids, h5.filename, fix=fix, preload_mb=0) as cache:
        gt = cache.h5
        if not cache.labelled:
            yield ""
            yield (f"not graded: {ground_truth} has no labels (its split has no label files), so precision "
                   "and recall against ground truth cannot be measured")
        elif "segments" in h5 and "instances" in h5:
            yield from instance_grade_lines(h5, gt)
        elif "labels" in h5 and h5.attrs.get("stage") != DatasetCache.STAGE:
            yield from semantic_grade_lines(h5, gt)
        else:
            yield ""
            yield "nothing to grade: the file holds neither predicted labels nor instances"


def audit_lines(path: str | Path, ground_truth: str | Path | None = None) -> Iterable[str]:
    """The lines of the audit report of ``path``; with ``ground_truth`` (a cache), grades too."""
    with open_any(path) as opened:
        h5 = opened.h5
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
            names, counts = np.unique(read_strings(h5, "datasets"), return_counts=True)
            yield ""
            yield "images per source dataset: " + ", ".join(f"{n}: {c}" for n, c in zip(names, counts))
        if info.get("stage") == DatasetCache.STAGE and not h5.attrs.get("labelled", True):
            yield ""
            yield "unlabelled: the split has no label files; its labels are all ignore and its instances all 0"
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
        if ground_truth is not None:
            yield from grade_lines(h5, ground_truth)
