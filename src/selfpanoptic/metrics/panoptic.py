"""Panoptic quality (PQ, SQ, RQ) and PQ-dagger on Cityscapes/COCO panoptic-format data (pure numpy).

This is a vectorised re-implementation of ``cityscapesscripts.evaluation.evalPanopticSemanticLabeling``
(which is COCO panopticapi's ``pq_compute``) and gives the same numbers. Per image, one ``bincount``
over a dense ``(gt segment, pred segment)`` pair index yields every overlap; matching, false
positives and false negatives are then computed on that small matrix. Images are accumulated into
per-category counters, so none has to be kept in memory.

Conventions (those of the official evaluator)
---------------------------------------------
* Segment ids are ``R + 256 G + 256^2 B`` of the panoptic PNG; id ``0`` is VOID. The category of a
  segment is the ``category_id`` of its ``segments_info`` entry; categories are Cityscapes labelIds
  (7 = road ... 33 = bicycle) in the official data, but any ids given in ``categories`` work.
* A ground-truth (GT) segment and a predicted segment *match* when they have the same category, the
  GT segment is not a crowd region (``iscrowd == 1``) and
  ``IoU = |g & p| / (|p| + |g| - |g & p| - |p & VOID|) > 0.5``: the prediction's pixels on VOID GT
  are left out of the union. Matches are unique because IoU > 0.5.
* The GT area is the ``area`` of its ``segments_info`` entry (as the official code does; it is the
  pixel count when the entry has no ``area``); the predicted area is always its pixel count in the
  PNG.
* GT pixels whose id is neither 0 nor listed in ``segments_info`` (and GT segments of categories
  not in ``categories``) are neither VOID nor matchable, as in the official code: they stay in the
  union of a prediction overlapping them. The semantic IoU of PQ-dagger ignores them.
* Unmatched, non-crowd GT segments are false negatives (FN). An unmatched prediction is a false
  positive (FP) unless more than half of its pixels lie on VOID GT plus the crowd region of its own
  category (the last crowd segment of that category in ``segments_info``, as in the official code).
* Per category: ``PQ = sum IoU / (TP + FP/2 + FN/2)``, ``SQ = sum IoU / TP`` (0 when TP = 0),
  ``RQ = TP / (TP + FP/2 + FN/2)``. All/Things/Stuff are means over the categories of the group
  with ``TP + FP + FN > 0``; their count is ``n``. Values are fractions; the printed table shows
  percentages.
* PQ-dagger (Porzi et al., 2019): thing categories keep their PQ, stuff categories are scored by
  their dataset-level semantic IoU, computed from the category maps of the panoptic images over
  pixels whose GT is not VOID (a predicted VOID pixel is a miss of its GT category); the mean is
  over thing categories with ``TP + FP + FN > 0`` and stuff categories with a non-empty union.

Differences from the official evaluator, all about malformed input: duplicate segment ids in a
``segments_info`` list, a GT segment with id 0, non-RGB PNGs and GT/prediction shape mismatches
raise ``ValueError`` (the official code silently keeps the last duplicate, or fails later or
not at all); the official code's ``KeyError`` for predicted ids missing from the JSON (and vice
versa) or unknown predicted categories is a ``ValueError`` naming the PNG here. When a group has
no category with ``TP + FP + FN > 0`` its means are NaN (the official code divides by zero).

:mod:`.panoptic_files` runs the evaluator over folders of PNGs with their JSONs, as the official
script does.
"""

from __future__ import annotations

import math
from typing import Iterable, Mapping, Sequence

import numpy as np


__all__ = ["VOID", "PanopticEvaluator"]

VOID = 0
"""Segment id of unlabelled pixels in panoptic PNGs."""

_LUT_LIMIT = 1 << 24
"""Ids below this (all ids of an RGB PNG) are densified with a lookup table; others by binary search."""


class _GroundTruthError(ValueError):
    """A ValueError about the ground truth (not the prediction) of an image."""


class _Densifier:
    """Map pixel segment ids to indices into a list of known ids with a reusable lookup table.

    The table (one entry per id up to the largest seen, at most ``_LUT_LIMIT`` entries = 64 MiB
    of lazily zero-filled memory for int32) is kept between images. It holds ``index - unknown``
    for the current image's known ids and 0 elsewhere, so that one gather and one addition give
    the index, or ``unknown`` for an id not in the list; only the entries of the current image's
    ids are written and reset, so an image costs O(pixels + segments). Negative ids or ids beyond
    the limit fall back to a binary search.
    """

    def __init__(self, dtype: type = np.int32) -> None:
        self._lut = np.zeros(0, dtype=dtype)

    def __call__(self, ids: np.ndarray, known: np.ndarray, void_index: int, unknown_index: int,
                 scale: int = 1) -> np.ndarray:
        """``scale`` times the index in ``known`` of each pixel's id (flattened); id 0 not in
        ``known`` -> ``void_index``; any other id not in ``known`` -> ``unknown_index`` (with
        ``len(known) <= void_index < unknown_index``)."""
        flat = ids.ravel()
        if flat.size == 0:
            return np.zeros(0, dtype=np.intp)
        lo, hi = int(flat.min()), int(flat.max())
        top = max(hi, int(known.max()) if known.size else 0)
        if (lo < 0 or (known.size and int(known.min()) < 0) or top >= _LUT_LIMIT
                or (unknown_index + 1) * scale >= np.iinfo(self._lut.dtype).max):
            return self._search(flat, known, void_index, unknown_index) * scale
        if self._lut.size <= top:
            self._lut = np.zeros(min(_LUT_LIMIT, 1 << max(16, int(top).bit_length())), dtype=self._lut.dtype)
        lut = self._lut
        lut[0] = (void_index - unknown_index) * scale
        lut[known] = np.arange(-unknown_index, known.size - unknown_index) * scale
        dense = np.take(lut, flat)
        lut[known] = 0
        lut[0] = 0
        dense += unknown_index * scale
        return dense

    @staticmethod
    def _search(flat: np.ndarray, known: np.ndarray, void_index: int, unknown_index: int) -> np.ndarray:
        dense = np.full(flat.shape, unknown_index, dtype=np.intp)
        if known.size:
            order = np.argsort(known, kind="stable")
            sorted_known = known[order]
            pos = np.minimum(np.searchsorted(sorted_known, flat), known.size - 1)
            found = sorted_known[pos] == flat
            dense[found] = order[pos[found]]
        else:
            found = np.zeros(flat.shape, dtype=bool)
        dense[(flat == VOID) & ~found] = void_index
        return dense


class PanopticEvaluator:
    """Accumulate PQ statistics (and semantic IoU for PQ-dagger) image by image.

    Parameters
    ----------
    categories:
        ``{category_id: {"name": str, "isthing": 0 | 1, ...}}`` (the ``categories`` of a panoptic
        GT JSON keyed by ``id``; a list of such dicts with an ``"id"`` key is accepted too). Their
        order is the order of the per-class results. GT segments of other categories are neither
        matched nor scored (as in the official evaluator); a prediction of another category is an
        error.

    Example
    -------
    >>> ev = PanopticEvaluator({7: {"name": "road", "isthing": 0}})
    >>> ids = np.array([[7, 7], [7, 0]])
    >>> ev.add(ids, [{"id": 7, "category_id": 7, "iscrowd": 0}], ids, [{"id": 7, "category_id": 7}])
    >>> ev.results()["All"]
    {'pq': 1.0, 'sq': 1.0, 'rq': 1.0, 'n': 1}
    """

    def __init__(self, categories: Mapping[int, Mapping] | Sequence[Mapping]):
        if not isinstance(categories, Mapping):
            categories = {int(c["id"]): c for c in categories}
        if not categories:
            raise ValueError("categories must not be empty")
        self.categories: dict[int, dict] = {}
        for cid, info in categories.items():
            if "name" not in info or "isthing" not in info:
                raise ValueError(f"category {cid} needs 'name' and 'isthing', got {dict(info)}")
            self.categories[int(cid)] = dict(info)
        self.category_ids = np.array(list(self.categories), dtype=np.int64)
        self.names = [str(info["name"]) for info in self.categories.values()]
        self.isthing = np.array([int(info["isthing"]) == 1 for info in self.categories.values()])
        self._index = {cid: i for i, cid in enumerate(self.categories)}
        self._gt_densifier = _Densifier(np.intp)  # GT ids are small (labelId * 1000 + instance)
        self._pred_densifier = _Densifier(np.int32)
        self.reset()

    @property
    def num_categories(self) -> int:
        return len(self.categories)

    def reset(self) -> None:
        c = self.num_categories
        # index c collects GT segments of categories outside ``categories`` (never reported)
        self.iou = np.zeros(c + 1, dtype=np.float64)
        self.tp = np.zeros(c + 1, dtype=np.int64)
        self.fp = np.zeros(c + 1, dtype=np.int64)
        self.fn = np.zeros(c + 1, dtype=np.int64)
        # semantic confusion over non-void GT pixels: rows GT category, column c = predicted VOID
        self.semantic_confusion = np.zeros((c, c + 1), dtype=np.int64)
        self.num_images = 0

    def merge(self, other: "PanopticEvaluator") -> "PanopticEvaluator":
        """Add the counts of another evaluator with the same categories (e.g. from another process)."""
        if list(other.categories) != list(self.categories):
            raise ValueError("cannot merge evaluators with different categories")
        self.iou += other.iou
        self.tp += other.tp
        self.fp += other.fp
        self.fn += other.fn
        self.semantic_confusion += other.semantic_confusion
        self.num_images += other.num_images
        return self

    # ------------------------------------------------------------------------------------------
    def _segments(self, segments: Iterable[Mapping], what: str, name: str) -> tuple[np.ndarray, list[Mapping]]:
        error = _GroundTruthError if what == "GT" else ValueError
        segments = list(segments)
        ids = np.array([int(s["id"]) for s in segments], dtype=np.int64)
        if ids.size:
            uniq, counts = np.unique(ids, return_counts=True)
            if (counts > 1).any():
                raise error(f"{name}: duplicate {what} segment id(s) {uniq[counts > 1].tolist()} in segments_info")
            if ids.min() < 0:
                raise error(f"{name}: negative {what} segment id(s) in segments_info")
        return ids, segments

    def add(
        self,
        gt_ids: np.ndarray,
        gt_segments: Iterable[Mapping],
        pred_ids: np.ndarray,
        pred_segments: Iterable[Mapping],
        image_id: str | None = None,
    ) -> None:
        """Accumulate one image.

        Parameters
        ----------
        gt_ids, pred_ids:
            ``(H, W)`` integer segment-id maps (0 = VOID), e.g. from
            :func:`selfpanoptic.formats.panoptic_png.read_panoptic_png`.
        gt_segments:
            GT ``segments_info``: dicts with ``id``, ``category_id``, ``iscrowd`` (default 0) and
            optionally ``area`` (used as the segment's area when present, like the official code).
        pred_segments:
            Predicted ``segments_info``: dicts with ``id`` and ``category_id``. Every non-zero id of
            ``pred_ids`` must be listed and every listed id must occur in ``pred_ids``.
        image_id:
            Name used in error messages.
        """
        name = image_id if image_id is not None else "image"
        gt_ids = np.asarray(gt_ids)
        pred_ids = np.asarray(pred_ids)
        if gt_ids.shape != pred_ids.shape:
            raise ValueError(f"{name}: GT shape {gt_ids.shape} differs from prediction shape {pred_ids.shape}")
        if gt_ids.ndim != 2:
            raise ValueError(f"{name}: segment-id maps must be 2-D, got shape {gt_ids.shape}")
        c = self.num_categories
        g_ids, g_list, g_cat, g_crowd = self._gt_table(gt_segments, name)
        p_ids, p_cat = self._pred_table(pred_segments, name)
        ng, npred = g_ids.size, p_ids.size
        overlap = self._overlap(gt_ids, g_ids, pred_ids, p_ids, name)
        p_area = overlap[:, :npred].sum(axis=0)
        if (p_area == 0).any():
            raise ValueError(
                f"{name}: predicted segment id(s) {p_ids[p_area == 0].tolist()} are in segments_info "
                f"but not in the PNG"
            )
        g_area = overlap[:ng].sum(axis=1)
        for i, s in enumerate(g_list):
            if s.get("area") is not None:
                g_area[i] = int(s["area"])
        inter = overlap[:ng, :npred]
        void_pred = overlap[ng, :npred]
        g_matched, p_matched = self._count_matches(inter, void_pred, g_cat, g_crowd, g_area, p_cat, p_area)
        # false negatives: unmatched non-crowd GT segments
        self.fn += np.bincount(g_cat[~g_matched & ~g_crowd], minlength=c + 1)
        self._count_false_positives(inter, void_pred, g_cat, g_crowd, p_cat, p_area, p_matched)
        self._count_semantic(overlap[:ng], g_cat, p_cat)
        self.num_images += 1

    def _gt_table(self, gt_segments: Iterable[Mapping],
                  name: str) -> tuple[np.ndarray, list[Mapping], np.ndarray, np.ndarray]:
        """GT ``segments_info`` as arrays: ids (G,) int64, the entries, category index (G,) intp
        (``num_categories`` for categories not scored) and crowd flags (G,) bool."""
        g_ids, g_list = self._segments(gt_segments, "GT", name)
        if (g_ids == VOID).any():
            raise _GroundTruthError(f"{name}: GT segments_info lists id 0, which is reserved for VOID")
        c = self.num_categories
        g_cat = np.array([self._index.get(int(s["category_id"]), c) for s in g_list], dtype=np.intp)
        g_crowd = np.array([int(s.get("iscrowd", 0)) == 1 for s in g_list], dtype=bool)
        return g_ids, g_list, g_cat, g_crowd

    def _pred_table(self, pred_segments: Iterable[Mapping], name: str) -> tuple[np.ndarray, np.ndarray]:
        """Predicted ``segments_info`` as arrays: ids (P,) int64 and category index (P,) intp."""
        p_ids, p_list = self._segments(pred_segments, "predicted", name)
        p_cat = np.empty(p_ids.size, dtype=np.intp)
        for j, s in enumerate(p_list):
            cid = int(s["category_id"])
            if cid not in self._index:
                raise ValueError(f"{name}: predicted segment {int(s['id'])} has unknown category_id {cid}")
            p_cat[j] = self._index[cid]
        return p_ids, p_cat

    def _overlap(self, gt_ids: np.ndarray, g_ids: np.ndarray, pred_ids: np.ndarray, p_ids: np.ndarray,
                 name: str) -> np.ndarray:
        """Pixel counts ``(G + 2, P + 1)`` int64 of every (GT segment, predicted segment) pair.

        Rows: the G GT segments, then VOID, then ids missing from the GT ``segments_info``;
        columns: the P predicted segments, then VOID. One ``bincount`` over a dense pair index.
        """
        ng, npred = g_ids.size, p_ids.size
        width = npred + 2  # a last column collects predicted ids missing from segments_info
        g_offset = self._gt_densifier(gt_ids, g_ids, ng, ng + 1, scale=width)  # row * width
        p_dense = self._pred_densifier(pred_ids, p_ids, npred, npred + 1)
        g_offset += p_dense
        overlap = np.bincount(g_offset, minlength=(ng + 2) * width).reshape(ng + 2, width)
        if overlap[:, npred + 1].any():
            flat = pred_ids.ravel()
            bad = np.unique(flat[p_dense == npred + 1])
            raise ValueError(
                f"{name}: predicted segment id(s) {bad[:20].tolist()} occur in the PNG but not in segments_info"
            )
        return overlap[:, : npred + 1]

    def _count_matches(self, inter: np.ndarray, void_pred: np.ndarray, g_cat: np.ndarray, g_crowd: np.ndarray,
                       g_area: np.ndarray, p_cat: np.ndarray, p_area: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Match segments (same category, GT not crowd, IoU > 0.5); add their TP and IoU.

        ``inter``: ``(G, P)`` pixel overlaps; ``void_pred``: ``(P,)`` predicted pixels on VOID GT;
        areas in pixels. Returns the matched flags of the GT ``(G,)`` and predicted ``(P,)`` segments.
        """
        c = self.num_categories
        cand = (inter > 0) & (g_cat[:, None] == p_cat[None, :]) & ~g_crowd[:, None]
        gi, pj = np.nonzero(cand)
        inter_c = inter[gi, pj]
        union = p_area[pj] + g_area[gi] - inter_c - void_pred[pj]
        with np.errstate(divide="ignore", invalid="ignore"):
            iou = inter_c / union
        hit = iou > 0.5
        gi, pj, iou = gi[hit], pj[hit], iou[hit]
        self.tp += np.bincount(g_cat[gi], minlength=c + 1)
        self.iou += np.bincount(g_cat[gi], weights=iou, minlength=c + 1)
        g_matched = np.zeros(len(g_cat), dtype=bool)
        g_matched[gi] = True
        p_matched = np.zeros(len(p_cat), dtype=bool)
        p_matched[pj] = True
        return g_matched, p_matched

    def _count_false_positives(self, inter: np.ndarray, void_pred: np.ndarray, g_cat: np.ndarray,
                               g_crowd: np.ndarray, p_cat: np.ndarray, p_area: np.ndarray,
                               p_matched: np.ndarray) -> None:
        """Add the unmatched predictions not mostly (> half their pixels) on VOID + crowd of their category."""
        c = self.num_categories
        crowd_row = np.full(c + 1, -1, dtype=np.intp)
        for i in np.flatnonzero(g_crowd):  # last crowd segment of a category wins, as in the official code
            crowd_row[g_cat[i]] = i
        un = np.flatnonzero(~p_matched)
        ignored = void_pred[un].astype(np.int64)
        rows = crowd_row[p_cat[un]]
        has_crowd = rows >= 0
        ignored[has_crowd] += inter[rows[has_crowd], un[has_crowd]]
        fp = un[ignored / p_area[un] <= 0.5]
        self.fp += np.bincount(p_cat[fp], minlength=c + 1)

    def _count_semantic(self, gt_overlap: np.ndarray, g_cat: np.ndarray, p_cat: np.ndarray) -> None:
        """Add to the semantic confusion: GT rows of known category; predicted VOID -> column ``c``.

        ``gt_overlap``: ``(G, P + 1)`` pixel overlaps of the GT segments (last column: predicted VOID).
        """
        c = self.num_categories
        known = g_cat < c
        if known.any():
            col_cat = np.append(p_cat, c)
            sem = np.zeros((c + 1, c + 1), dtype=np.int64)
            rr = np.repeat(g_cat[known], len(p_cat) + 1)
            cc = np.tile(col_cat, int(known.sum()))
            np.add.at(sem, (rr, cc), gt_overlap[known].ravel())
            self.semantic_confusion += sem[:c]

    # ------------------------------------------------------------------------------------------
    def semantic_iou(self) -> np.ndarray:
        """Dataset-level semantic IoU per category (NaN where the union is empty)."""
        conf = self.semantic_confusion
        c = self.num_categories
        tp = np.diag(conf[:, :c]).astype(np.float64)
        gt_total = conf.sum(axis=1)
        pred_total = conf[:, :c].sum(axis=0)
        union = gt_total + pred_total - tp
        out = np.full(c, np.nan)
        np.divide(tp, union, out=out, where=union > 0)
        return out

    def _subset_mask(self, category_subset: Iterable[int] | None) -> np.ndarray:
        if category_subset is None:
            return np.ones(self.num_categories, dtype=bool)
        mask = np.zeros(self.num_categories, dtype=bool)
        for cid in category_subset:
            if int(cid) not in self._index:
                raise ValueError(f"category_subset: unknown category id {cid}; known: {list(self.categories)}")
            mask[self._index[int(cid)]] = True
        return mask

    def results(self, category_subset: Iterable[int] | None = None) -> dict:
        """PQ/SQ/RQ per group and class, and PQ-dagger, as fractions.

        Returns ``{"All"|"Things"|"Stuff": {"pq", "sq", "rq", "n"}, "per_class": {name: {"pq", "sq",
        "rq"}}, "PQ_dagger": float, "semantic_iou": {name: float}, "num_images": int}``.
        ``category_subset`` (category ids) restricts every mean and the per-class entries to those
        categories (e.g. the 16 classes of the Synthia protocol). Classes with ``TP + FP + FN == 0``
        get 0 in ``per_class`` (as in the official code) and are left out of the means.
        """
        c = self.num_categories
        sel = self._subset_mask(category_subset)
        tp = self.tp[:c].astype(np.float64)
        fp = self.fp[:c].astype(np.float64)
        fn = self.fn[:c].astype(np.float64)
        iou = self.iou[:c]
        present = (tp + fp + fn) > 0
        denom = tp + 0.5 * fp + 0.5 * fn
        pq = np.zeros(c)
        sq = np.zeros(c)
        rq = np.zeros(c)
        np.divide(iou, denom, out=pq, where=present)
        np.divide(iou, tp, out=sq, where=tp > 0)
        np.divide(tp, denom, out=rq, where=present)

        out: dict = {}
        for group, members in (("All", sel), ("Things", sel & self.isthing), ("Stuff", sel & ~self.isthing)):
            m = members & present
            n = int(m.sum())
            if n:
                out[group] = {"pq": float(pq[m].mean()), "sq": float(sq[m].mean()), "rq": float(rq[m].mean()), "n": n}
            else:
                out[group] = {"pq": math.nan, "sq": math.nan, "rq": math.nan, "n": 0}
        out["per_class"] = {
            self.names[k]: {"pq": float(pq[k]), "sq": float(sq[k]), "rq": float(rq[k])} for k in np.flatnonzero(sel)
        }
        sem_iou = self.semantic_iou()
        dagger = np.where(self.isthing, np.where(present, pq, np.nan), sem_iou)[sel]
        out["PQ_dagger"] = float(np.nanmean(dagger)) if np.isfinite(dagger).any() else math.nan
        out["semantic_iou"] = {self.names[k]: float(sem_iou[k]) for k in np.flatnonzero(sel)}
        out["num_images"] = self.num_images
        return out
