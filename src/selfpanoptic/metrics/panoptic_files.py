"""Panoptic evaluation of folders in the official format: the JSONs, the PNGs read ahead in threads,
and the printed table; the counting itself is :class:`~selfpanoptic.metrics.panoptic.PanopticEvaluator`.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from itertools import islice
from typing import Iterable, Iterator, Mapping

import numpy as np

from ..formats.panoptic_png import read_panoptic_png
from .panoptic import PanopticEvaluator, _GroundTruthError

__all__ = ["evaluate_panoptic_folders", "format_table"]


def _load_json(path: str | os.PathLike, required: tuple[str, ...] = ("annotations",)) -> dict:
    """A COCO-panoptic JSON with the ``required`` keys; ``ValueError`` naming the file when it is not one."""
    try:
        with open(path) as handle:
            data = json.load(handle)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{os.fspath(path)}: not a JSON file ({exc})") from None
    if not isinstance(data, dict) or not set(required) <= set(data):
        raise ValueError(f"{os.fspath(path)}: not a panoptic JSON (needs {' and '.join(map(repr, required))})")
    return data


def _available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _read_pair(gt_path: str, pred_path: str) -> tuple[np.ndarray, np.ndarray]:
    return read_panoptic_png(gt_path), read_panoptic_png(pred_path)


def evaluate_panoptic_folders(
    gt_json_file: str | os.PathLike,
    gt_folder: str | os.PathLike,
    prediction_json_file: str | os.PathLike,
    prediction_folder: str | os.PathLike,
    category_subset: Iterable[int] | None = None,
    num_workers: int | None = None,
) -> dict:
    """Evaluate predictions in the official panoptic format against Cityscapes panoptic GT.

    Categories come from the GT JSON's ``categories``; GT and predicted annotations are paired by
    ``image_id`` and their PNGs read from ``gt_folder``/``prediction_folder`` by ``file_name``.
    Raises ``ValueError`` naming the image when a GT image has no prediction, and naming the PNG
    when its ids disagree with its ``segments_info``. ``category_subset`` is passed to
    :meth:`PanopticEvaluator.results`, whose dict is returned.

    PNGs are decoded by ``num_workers`` threads (default: up to 4, one per CPU) a few images
    ahead of the (single-threaded) accumulation, so at most ``2 * num_workers + 1`` image pairs
    are in memory; ``num_workers=0`` reads them in the calling thread.
    """
    gt_json = _load_json(gt_json_file, ("annotations", "categories"))
    pred_json = _load_json(prediction_json_file)
    evaluator = PanopticEvaluator({int(c["id"]): c for c in gt_json["categories"]})
    jobs = _pair_jobs(gt_json, pred_json, prediction_json_file, gt_folder, prediction_folder)
    if num_workers is None:
        num_workers = min(4, _available_cpus())
    # closing: an error stops the reads ahead before it propagates
    with contextlib.closing(_read_ahead(jobs, num_workers)) as pairs:
        for (gt_ann, pred_ann, gt_path, pred_path), gt_ids, pred_ids in pairs:
            if gt_ids.shape != pred_ids.shape:
                raise ValueError(f"{pred_path}: prediction of shape {pred_ids.shape} but its ground truth "
                                 f"{gt_path} has shape {gt_ids.shape}")
            try:
                evaluator.add(gt_ids, gt_ann["segments_info"], pred_ids, pred_ann["segments_info"],
                              image_id=f"image {gt_ann['image_id']}")
            except _GroundTruthError as err:
                raise ValueError(f"{gt_path}: {err}") from None
            except ValueError as err:
                raise ValueError(f"{pred_path}: {err}") from None
    return evaluator.results(category_subset)


_Job = tuple[dict, dict, str, str]
"""(GT annotation, predicted annotation, GT PNG path, predicted PNG path) of one image."""


def _pair_jobs(gt_json: dict, pred_json: dict, prediction_json_file: str | os.PathLike,
               gt_folder: str | os.PathLike, prediction_folder: str | os.PathLike) -> list[_Job]:
    """One job per GT annotation, in GT order, paired with its prediction by ``image_id``.

    Raises ``ValueError`` naming up to five GT images that have no prediction.
    """
    predictions = {ann["image_id"]: ann for ann in pred_json["annotations"]}
    missing = [ann["image_id"] for ann in gt_json["annotations"] if ann["image_id"] not in predictions]
    if missing:
        more = f" (and {len(missing) - 5} more)" if len(missing) > 5 else ""
        raise ValueError(
            f"{prediction_json_file}: no prediction for the GT image(s) {', '.join(map(str, missing[:5]))}{more}"
        )
    return [
        (gt_ann, predictions[gt_ann["image_id"]],
         os.path.join(gt_folder, gt_ann["file_name"]),
         os.path.join(prediction_folder, predictions[gt_ann["image_id"]]["file_name"]))
        for gt_ann in gt_json["annotations"]
    ]


def _read_ahead(jobs: list[_Job], num_workers: int) -> Iterator[tuple[_Job, np.ndarray, np.ndarray]]:
    """``(job, gt_ids, pred_ids)`` in job order; ids are ``(H, W)`` segment-id maps.

    With ``num_workers > 0`` (and more than one job) that many threads decode the PNGs, keeping
    ``2 * num_workers`` pairs ahead of the consumer; otherwise each pair is read when asked for.
    """
    if num_workers <= 0 or len(jobs) <= 1:
        for job in jobs:
            yield (job, *_read_pair(job[2], job[3]))
        return
    with ThreadPoolExecutor(max_workers=num_workers) as pool:
        pending: deque = deque()
        upcoming = iter(jobs)
        for job in islice(upcoming, 2 * num_workers):
            pending.append((job, pool.submit(_read_pair, job[2], job[3])))
        while pending:
            job, future = pending.popleft()
            gt_ids, pred_ids = future.result()
            following = next(upcoming, None)
            if following is not None:
                pending.append((following, pool.submit(_read_pair, following[2], following[3])))
            yield job, gt_ids, pred_ids


def format_table(results: Mapping) -> str:
    """The results as a text table like the official one (percentages): per class, then All/Things/Stuff."""
    lines = ["{:14s}| {:>5s}  {:>5s}  {:>5s}".format("Category", "PQ", "SQ", "RQ")]
    for name, r in results.get("per_class", {}).items():
        lines.append("{:14s}| {:5.1f}  {:5.1f}  {:5.1f}".format(name, 100 * r["pq"], 100 * r["sq"], 100 * r["rq"]))
    lines.append("-" * 41)
    lines.append("{:14s}| {:>5s}  {:>5s}  {:>5s} {:>5s}".format("", "PQ", "SQ", "RQ", "N"))
    for group in ("All", "Things", "Stuff"):
        if group in results:
            r = results[group]
            lines.append("{:14s}| {:5.1f}  {:5.1f}  {:5.1f} {:5d}".format(
                group, 100 * r["pq"], 100 * r["sq"], 100 * r["rq"], int(r["n"])))
    if "PQ_dagger" in results:
        lines.append("{:14s}| {:5.1f}".format("PQ-dagger", 100 * results["PQ_dagger"]))
    return "\n".join(lines)
