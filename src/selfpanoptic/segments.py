"""Small pure functions on label and instance maps shared by indexing, audits and fusion."""

from __future__ import annotations

import numpy as np

from .classes import IGNORE


def instance_votes(labels: np.ndarray, instances: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """How many pixels of each instance carry each label value.

    labels: (H, W) uint8 class ids (255 = ignore); instances: (H, W) int (0 = no instance).
    Returns ``(ids, votes)``: the sorted instance ids > 0 and a ``(K, 256)`` int64 count of each
    label value (ignore included, in column 255) per instance.

    >>> ids, votes = instance_votes(np.array([[1, 1, 2], [255, 255, 2]], np.uint8), np.array([[5, 5, 5], [7, 7, 0]]))
    >>> ids, votes[:, [1, 2, 255]]
    (array([5, 7]), array([[2, 1, 0],
           [0, 0, 2]]))
    """
    mask = instances > 0
    ids, inverse = np.unique(instances[mask], return_inverse=True)
    votes = np.zeros((len(ids), 256), dtype=np.int64)
    np.add.at(votes, (inverse, labels[mask]), 1)
    return ids, votes


def instance_majority_classes(labels: np.ndarray, instances: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The class covering most pixels of each instance, ignoring pixels labelled ignore.

    labels: (H, W) uint8 class ids (255 = ignore); instances: (H, W) int (0 = no instance).
    Returns ``(ids, classes)``: the sorted instance ids > 0 and, for each, its majority class
    (0..254), or 255 when all its pixels are ignore. Ties go to the smaller class id.

    >>> labels = np.array([[1, 1, 2], [255, 255, 2]], dtype=np.uint8)
    >>> instances = np.array([[5, 5, 5], [7, 7, 0]])
    >>> instance_majority_classes(labels, instances)
    (array([5, 7]), array([  1, 255], dtype=uint8))
    """
    if not (instances > 0).any():
        return np.zeros(0, dtype=instances.dtype), np.zeros(0, dtype=np.uint8)
    ids, votes = instance_votes(labels, instances)
    votes[:, IGNORE] = 0
    classes = votes.argmax(axis=1).astype(np.uint8)
    classes[votes[np.arange(len(ids)), classes] == 0] = IGNORE
    return ids, classes
