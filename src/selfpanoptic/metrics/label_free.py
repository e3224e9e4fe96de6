"""Label-free scores of a semantic model on the unlabelled target train images, and how well they rank runs.

No target label enters these scores, so they can choose a round (or a variant) where the target
has no labels. Each is a percentage over the pixels of the target train split:

``confidence``
    mean softmax maximum;
``entropy``
    mean entropy of the softmax divided by ``log C`` (0 = certain, 100 = uniform);
``confident_share``
    share of pixels whose softmax maximum is at least :data:`CONFIDENT` (what thresholded
    pseudo-labels would keep);
``flip_agreement``
    share of pixels whose label is the same when the image is mirrored (the model's agreement
    with itself under a view change, as a teacher and student are compared);
``class_distance``
    total-variation distance between the predicted class shares and the source labels' class
    shares (0 = the same distribution, 100 = disjoint);
``round_agreement``
    share of pixels labelled as the previous round labelled them (rounds 1, 2, ...; undefined for
    round 0 and runs without a previous round).

:func:`score_correlations` ranks every (experiment, seed, round) of an ablation table by each score
and by val mIoU and PQ, and gives Spearman's rank correlation between the two.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch

from .table import NAMED_RUNS

__all__ = ["CONFIDENT", "HIGHER_IS_BETTER", "SCORES", "LabelFreeTally", "class_distance", "normalised_entropy",
           "rank_correlation", "score_correlations", "select_round"]

CONFIDENT = 0.9
"""Softmax maximum from which a pixel counts as confident (``confident_share``)."""

SCORES = ("confidence", "entropy", "confident_share", "flip_agreement", "class_distance", "round_agreement")
"""The label-free scores, in table order."""

HIGHER_IS_BETTER = {"confidence": True, "entropy": False, "confident_share": True, "flip_agreement": True,
                    "class_distance": False, "round_agreement": True}
"""Which way each score points when it chooses a round."""


def normalised_entropy(probabilities: torch.Tensor) -> torch.Tensor:
    """Entropy of each pixel's class distribution over ``log C``: ``(B, C, H, W)`` -> ``(B, H, W)`` in [0, 1]."""
    classes = probabilities.shape[1]
    p = probabilities.clamp_min(1e-12)
    return -(probabilities * p.log()).sum(dim=1) / math.log(classes)


def class_distance(counts: np.ndarray, reference: np.ndarray) -> float:
    """Total-variation distance ``0.5 * sum |p - q|`` between the class shares of pixel ``counts``
    ``(C,)`` and the class shares ``reference`` ``(C,)`` (both normalised here), in [0, 1]."""
    p = np.asarray(counts, dtype=np.float64)
    q = np.asarray(reference, dtype=np.float64)
    if p.shape != q.shape or p.sum() <= 0 or q.sum() <= 0:
        raise ValueError(f"counts {p.shape} and reference {q.shape} must be non-empty histograms of one length")
    return float(0.5 * np.abs(p / p.sum() - q / q.sum()).sum())


class LabelFreeTally:
    """Running sums of the per-pixel scores over a split, batch by batch (:meth:`add`), then
    :meth:`scores`. ``classes``: the number of classes C."""

    def __init__(self, classes: int):
        self.pixels = 0
        self.confidence = self.entropy = 0.0
        self.confident = self.flip_agree = 0
        self.counts = np.zeros(classes, dtype=np.int64)

    def add(self, probabilities: torch.Tensor, flipped: torch.Tensor) -> np.ndarray:
        """Count a batch: ``probabilities`` ``(B, C, H, W)`` softmax of the images, ``flipped`` the
        softmax of the mirrored images, mirrored back. Returns the batch's labels ``(B, H, W)``."""
        peak, labels = probabilities.max(dim=1)
        self.pixels += labels.numel()
        self.confidence += float(peak.double().sum())
        self.entropy += float(normalised_entropy(probabilities).double().sum())
        self.confident += int((peak >= CONFIDENT).sum())
        self.flip_agree += int((flipped.argmax(dim=1) == labels).sum())
        labels = labels.cpu().numpy()
        self.counts += np.bincount(labels.ravel(), minlength=len(self.counts))[: len(self.counts)]
        return labels

    def scores(self, reference: np.ndarray, agreement: float = float("nan")) -> dict[str, float]:
        """``{score: percent}`` of everything added, ``class_distance`` against the class shares
        ``reference`` ``(C,)``; ``agreement``: the ``round_agreement`` fraction (NaN: none)."""
        if self.pixels == 0:
            raise ValueError("no pixels were added")
        fractions = {
            "confidence": self.confidence / self.pixels,
            "entropy": self.entropy / self.pixels,
            "confident_share": self.confident / self.pixels,
            "flip_agreement": self.flip_agree / self.pixels,
            "class_distance": class_distance(self.counts, reference),
            "round_agreement": agreement,
        }
        return {name: round(100.0 * value, 4) for name, value in fractions.items()}


def rank_correlation(x: np.ndarray | list[float], y: np.ndarray | list[float]) -> float:
    """Spearman's rank correlation of two samples (ties get their mean rank); NaN pairs are
    dropped; NaN when fewer than 3 pairs remain or one sample is constant."""
    frame = pd.DataFrame({"x": np.asarray(x, dtype=float), "y": np.asarray(y, dtype=float)}).dropna()
    if len(frame) < 3:
        return float("nan")
    rx, ry = frame["x"].rank(), frame["y"].rank()
    if rx.std() == 0 or ry.std() == 0:
        return float("nan")
    return float(np.corrcoef(rx, ry)[0, 1])


TARGETS = (("semantic", "mIoU"), ("panoptic", "PQ"))
"""(task, metric) that the label-free scores are correlated with."""


def _score_rows(table: pd.DataFrame) -> pd.DataFrame:
    """The rounds' overall rows of an ablation table that the label-free analyses read (each
    label-free score and each of :data:`TARGETS`), with a ``name`` column (the score or the target
    metric); empty when the table has no label-free rows."""
    wanted = {("label_free", s): s for s in SCORES} | {target: target[1] for target in TARGETS}
    rows = table[(table["class"] == "all") & ~table["run"].isin(NAMED_RUNS)]
    rows = rows[[(t, m) in wanted for t, m in zip(rows["task"], rows["metric"])]]
    if "label_free" not in set(rows["task"]):
        return rows.iloc[:0]
    return rows.assign(name=[wanted[(t, m)] for t, m in zip(rows["task"], rows["metric"])])


def score_correlations(table: pd.DataFrame) -> pd.DataFrame:
    """Spearman's rank correlation of each label-free score with val mIoU and PQ over the rounds
    of an ablation table (:func:`~selfpanoptic.metrics.ablation.collect_ablation`): one point per
    (experiment, seed, round); the oracle and other named runs are left out (they are not
    candidates a user could pick without labels). A round shared by several experiments (round
    0) counts once.

    Returns columns ``score``, ``runs`` (points with the score), then ``rho_<metric>`` for each of
    :data:`TARGETS` present; empty when the table has no label-free rows.
    """
    rows = _score_rows(table)
    if rows.empty:
        return pd.DataFrame(columns=["score", "runs"])
    key = rows["experiment"].astype(str) + "/" + rows["seed"].astype(str) + "/" + rows["run"]
    # round 0 is the same run in every experiment of a seed: keep it once
    key = key.where(rows["run"] != "round0", "*/" + rows["seed"].astype(str) + "/round0")
    wide = rows.assign(key=key).drop_duplicates(["key", "name"]).pivot(index="key", columns="name", values="value")
    out = []
    for score in SCORES:
        if score not in wide:
            continue
        row = {"score": score, "runs": int(wide[score].notna().sum())}
        for _, metric in TARGETS:
            if metric in wide:
                row[f"rho_{metric}"] = round(rank_correlation(wide[score], wide[metric]), 3)
        out.append(row)
    return pd.DataFrame(out)


def select_round(values: list[float], higher_is_better: bool, patience: int = 1) -> int:
    """The round a label-free score chooses, with a stopping rule: ``values[r]`` is the score of
    round r (0, 1, ...; NaN = undefined, never an improvement). Rounds are visited in order and
    the best so far is kept; after ``patience`` rounds in a row that do not improve on it, the
    later rounds are not looked at (they would not have been trained). Returns the best round seen.
    """
    if not len(values):
        raise ValueError("no rounds to choose from")
    if patience < 1:
        raise ValueError(f"patience must be at least 1, got {patience}")
    sign = 1.0 if higher_is_better else -1.0
    best, best_value, waited = 0, sign * float(values[0]), 0
    for r in range(1, len(values)):
        value = sign * float(values[r])
        if not math.isnan(value) and (math.isnan(best_value) or value > best_value):
            best, best_value, waited = r, value, 0
        else:
            waited += 1
            if waited >= patience:
                break
    return best


def round_selection(table: pd.DataFrame, patience: int = 1) -> pd.DataFrame:
    """What choosing the round by each label-free score gives, over an ablation table: one row per
    (score, experiment, seed) with the chosen round (:func:`select_round`) and its val mIoU and
    PQ, next to the last round's and the best round's (chosen with the val labels).

    Columns: ``score, experiment, seed, chosen, mIoU, PQ, last_mIoU, last_PQ, best_mIoU``
    (PQ columns NaN without panoptic rows); empty without label-free rows.
    """
    rows = _score_rows(table)
    if rows.empty:
        return pd.DataFrame(columns=["score", "experiment", "seed", "chosen"])
    rows = rows.assign(r=[int(run.removeprefix("round")) for run in rows["run"]])
    out = []
    for (experiment, seed), tree in rows.groupby(["experiment", "seed"], sort=False):
        wide = tree.pivot_table(index="r", columns="name", values="value", aggfunc="first").sort_index()
        val = wide.get("mIoU", pd.Series(np.nan, index=wide.index))
        pq = wide.get("PQ", pd.Series(np.nan, index=wide.index))
        for score in SCORES:
            if score not in wide:
                continue
            chosen = int(wide.index[select_round(list(wide[score]), HIGHER_IS_BETTER[score], patience)])
            out.append({"score": score, "experiment": experiment, "seed": int(seed), "chosen": chosen,
                        "mIoU": val[chosen], "PQ": pq[chosen], "last_mIoU": val.iloc[-1], "last_PQ": pq.iloc[-1],
                        "best_mIoU": val.max()})
    return pd.DataFrame(out)
