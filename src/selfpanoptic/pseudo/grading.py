"""How good are a round's pseudo-labels? Grading against ground truth, for audits and plots.

Self-training never sees the target labels; these functions are for people (``selfpanoptic
audit --ground-truth``), as the thesis' training plots of pseudo-label precision and of true- and
false-positive pseudo instances.
"""

from __future__ import annotations

import numpy as np

from ..classes import IGNORE, NUM_CLASSES


def semantic_grade_counts(pseudo: np.ndarray, argmax: np.ndarray, gt: np.ndarray, num_classes: int = NUM_CLASSES) -> np.ndarray:
    """Pixel counts ``(num_classes, 4)`` grading pseudo-labels against ground truth.

    ``pseudo``: pseudo-labels (255 = ignored), ``argmax``: the prediction they were thresholded
    from, ``gt``: ground truth (255 = unlabelled); any equal shapes. Only pixels with a
    ground-truth label count. Columns per class ``c``: pixels labelled ``c`` by ``pseudo``, of
    those correct, pixels with ``argmax == c``, of those correct. Sum over images to grade a set.
    """
    if not (pseudo.shape == argmax.shape == gt.shape):
        raise ValueError(f"shapes differ: {pseudo.shape}, {argmax.shape}, {gt.shape}")
    valid = gt != IGNORE
    counts = np.zeros((num_classes, 4), dtype=np.int64)
    for column, labels in ((0, pseudo), (2, argmax)):
        lab, truth = labels[valid].astype(np.int64), gt[valid].astype(np.int64)
        kept = lab < num_classes
        counts[:, column] = np.bincount(lab[kept], minlength=num_classes)[:num_classes]
        correct = kept & (lab == truth)
        counts[:, column + 1] = np.bincount(lab[correct], minlength=num_classes)[:num_classes]
    return counts


def precision(correct: np.ndarray, total: np.ndarray) -> np.ndarray:
    """``correct / total`` elementwise, NaN where ``total`` is 0."""
    correct, total = np.asarray(correct, dtype=np.float64), np.asarray(total, dtype=np.float64)
    out = np.full(np.broadcast(correct, total).shape, np.nan)
    np.divide(correct, total, out=out, where=total > 0)
    return out


def match_instances(
    pred: np.ndarray, pred_classes: dict[int, int], gt: np.ndarray, gt_classes: dict[int, int], iou_threshold: float = 0.5,
) -> list[tuple[int, float, bool]]:
    """Grade each predicted instance of one image: ``(class, best IoU, true positive)`` per instance.

    ``pred``, ``gt``: ``(H, W)`` instance ids (0 = none); ``pred_classes`` / ``gt_classes`` map
    ids to trainIds. A predicted instance is a true positive when a ground-truth instance of the
    same class overlaps it with IoU >= ``iou_threshold`` (at 0.5 or above at most one can, so
    no assignment is needed); best IoU is over the ground-truth instances of its class.
    Predicted ids missing from ``pred_classes`` are skipped. Sorted by predicted id.
    """
    if pred.shape != gt.shape:
        raise ValueError(f"shapes differ: {pred.shape} and {gt.shape}")
    p_ids, p_inv = np.unique(pred.ravel(), return_inverse=True)
    g_ids, g_inv = np.unique(gt.ravel(), return_inverse=True)
    joint = np.bincount(p_inv.ravel() * len(g_ids) + g_inv.ravel(), minlength=len(p_ids) * len(g_ids))
    joint = joint.reshape(len(p_ids), len(g_ids))
    p_area, g_area = joint.sum(1), joint.sum(0)
    graded = []
    for i, pid in enumerate(p_ids):
        if pid == 0 or int(pid) not in pred_classes:
            continue
        cls = pred_classes[int(pid)]
        best = 0.0
        for j, gid in enumerate(g_ids):
            if gid == 0 or gt_classes.get(int(gid)) != cls or joint[i, j] == 0:
                continue
            best = max(best, joint[i, j] / (p_area[i] + g_area[j] - joint[i, j]))
        graded.append((cls, float(best), best >= iou_threshold))
    return graded
