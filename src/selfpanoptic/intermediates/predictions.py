"""Predictions of a run on a dataset cache: semantic labels, and instances with their segments.

Semantic: ``labels`` (N, H, W) uint8 predicted trainIds and ``confidence`` (N, H, W) float16
softmax maximum. Instance: ``instances`` (N, H, W) int32 (0 = none, 1..K per image), one row per
instance in ``segments`` (image index, instance id, trainId, pixel area) and ``segment_scores``
(mean semantic confidence over the mask, which ranks instances for AP). A round's pseudo instance
masks (:class:`~.pseudo_labels.InstancePseudoLabels`) have the same layout.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import h5py
import numpy as np

from .base import Intermediate

SEGMENT_COLUMNS = ["image_index", "instance_id", "train_id", "area"]


class SemanticPrediction(Intermediate):
    """A semantic model's labels and confidence on every image of a cache."""

    STAGE = "semantic_prediction"
    KIND = "semantic prediction"
    FIX = "rerun predict-semantic on this cache"
    STACKS = {
        "labels": (np.uint8, "predicted trainIds"),
        "confidence": (np.float16, "softmax maximum"),
    }


class InstancePrediction(Intermediate):
    """Predicted instances of every image of a cache; :meth:`segments` gives one image's table."""

    STAGE = "instance_prediction"
    KIND = "instance prediction"
    FIX = "rerun predict-instance on this cache"
    STACKS = {"instances": (np.int32, "instance ids, 0 = none")}

    def __init__(self, h5: h5py.File, path: str | Path):
        super().__init__(h5, path)
        table = h5["segments"][()].reshape(-1, 4)
        scores = h5["segment_scores"][()]
        order = np.argsort(table[:, 0], kind="stable")
        self._table, self._scores = table[order], scores[order]
        self._starts = np.searchsorted(self._table[:, 0], np.arange(len(self) + 1))

    def segments(self, index: int) -> tuple[dict[int, int], dict[int, float]]:
        """Image ``index``'s instances: ``({instance id: trainId}, {instance id: score})``."""
        rows = slice(self._starts[index], self._starts[index + 1])
        table, scores = self._table[rows], self._scores[rows]
        return ({int(r[1]): int(r[2]) for r in table}, {int(r[1]): float(s) for r, s in zip(table, scores)})

    @staticmethod
    def write_segments(h5: h5py.File, rows: Sequence[tuple[int, int, int, int]], scores: Sequence[float]) -> None:
        """Store the segments table (``rows`` as :data:`SEGMENT_COLUMNS`) and scores in a file being written."""
        table = h5.create_dataset("segments", data=np.array(rows, dtype=np.int64).reshape(-1, 4))
        table.attrs["columns"] = SEGMENT_COLUMNS
        h5.create_dataset("segment_scores", data=np.array(scores, dtype=np.float32))
