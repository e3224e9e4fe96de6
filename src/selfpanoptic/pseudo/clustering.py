"""Instances from pixel embeddings: "mean-shift+" clustering inside each thing class.

At inference the instance branch gives one embedding per pixel (see
:mod:`selfpanoptic.losses.embedding`). For every thing class of the semantic prediction, the
embeddings of that class's pixels are clustered:

1. :func:`mean_shift`: flat-kernel mean-shift with ``bandwidth = delta_v``, seeded and
   post-processed like ``sklearn.cluster.MeanShift(bin_seeding=True, cluster_all=True)``;
2. :func:`merge_close_clusters` (the "+"): clusters whose means lie within ``delta_d`` of a
   larger cluster's mean are merged into it, since training pushes distinct instances at least
   ``2 * delta_d`` apart;
3. clusters smaller than ``min_size`` pixels are dropped.

:func:`instances_from_embeddings` runs the three steps and numbers the instances of all classes
consecutively.

Everything here is numpy in, numpy out; the heavy part (the seeds x points distance matrices
of mean-shift) runs in blocks through torch on the CPU.
"""

from __future__ import annotations

import numpy as np
import torch

from ..classes import THING_TRAIN_IDS

BLOCK_ELEMENTS = 1 << 22
"""Points x modes elements per distance block of the final label assignment (32 MiB in float64)."""

SEED_BLOCK = 128
"""Seeds iterated together by :func:`mean_shift` (a spatially compact group)."""

CANDIDATE_MARGIN = 0.5
"""How far (in bandwidths) a seed may move before its block's candidate points are collected anew."""

POINT_LEAF = 32
"""Points per ball of the structure that finds the candidate points of a block of seeds."""


def bin_seeds(points: np.ndarray, bin_size: float, min_bin_freq: int = 1) -> np.ndarray:
    """Seeds of :func:`mean_shift`: the centres of the occupied cells of a grid, as in sklearn.

    Every point is rounded to the grid of spacing ``bin_size`` (``round(x / bin_size)``, halves
    to even, per coordinate); each cell holding at least ``min_bin_freq`` points gives one seed
    at ``cell * bin_size``. Seeds come in the order in which their cells first occur in
    ``points``. When there are as many seeds as points, the points themselves are returned
    (sklearn does the same: binning then saves nothing).

    Parameters
    ----------
    points:
        ``(N, D)`` float32, embedding units.
    bin_size:
        Grid spacing in embedding units (:func:`mean_shift` uses the bandwidth).
    min_bin_freq:
        Minimum number of points in a cell for it to give a seed.

    Returns
    -------
    ``(S, D)`` float32 seeds; ``S`` may be 0 when no cell is full enough.
    """
    points = np.asarray(points, dtype=np.float32)
    if len(points) == 0:
        return points.reshape(0, points.shape[1] if points.ndim == 2 else 0).copy()
    cells = np.round(points / np.float32(bin_size)) + np.float32(0.0)  # + 0 turns -0.0 into 0.0
    unique, first, counts = np.unique(cells, axis=0, return_index=True, return_counts=True)
    order = np.argsort(first, kind="stable")
    unique, counts = unique[order], counts[order]
    seeds = unique[counts >= min_bin_freq]
    if len(seeds) == len(points):
        return points.copy()
    return (seeds * np.float32(bin_size)).astype(np.float32)


def _spatial_leaves(points: np.ndarray, leaf: int) -> list[np.ndarray]:
    """Index groups of near points: the leaves of a k-d tree over ``points``, in tree order.

    Recursively splits at the median of the coordinate with the largest range until a part
    holds at most ``leaf`` points. Concatenated, the leaves order the points so that near
    points tend to be near each other.
    """
    leaves = []
    stack = [np.arange(len(points))]
    while stack:
        index = stack.pop()
        if len(index) <= leaf:
            if len(index):
                leaves.append(index)
            continue
        part = points[index]
        axis = int(np.argmax(part.max(0) - part.min(0)))
        half = len(index) // 2
        split = np.argpartition(part[:, axis], half)
        stack.append(index[split[half:]])
        stack.append(index[split[:half]])
    return leaves


class _Neighbourhoods:
    """The points, grouped into small balls (k-d tree leaves) to find candidates fast.

    ``within(centres, radius)`` returns the indices of the points within ``radius`` of at least
    one centre: the balls that can reach a centre are selected first, and only their points
    are compared with the centres.
    """

    def __init__(self, points: torch.Tensor, leaf: int):
        leaves = _spatial_leaves(points.numpy(), leaf)
        self.points = points
        self.points_sq = (points * points).sum(1)
        self.leaf_of_point = torch.empty(points.shape[0], dtype=torch.int64)
        for i, index in enumerate(leaves):
            self.leaf_of_point[torch.from_numpy(index)] = i
        count = torch.bincount(self.leaf_of_point, minlength=len(leaves)).to(points.dtype)
        sums = torch.zeros((len(leaves), points.shape[1]), dtype=points.dtype).index_add_(
            0, self.leaf_of_point, points)
        self.centres = sums / count[:, None]
        spread = torch.linalg.vector_norm(points - self.centres[self.leaf_of_point], dim=1)
        self.radii = torch.zeros(len(leaves), dtype=points.dtype).scatter_reduce_(
            0, self.leaf_of_point, spread, reduce="amax")

    def within(self, centres: torch.Tensor, radius: float) -> torch.Tensor:
        distance = torch.cdist(centres, self.centres, compute_mode="donot_use_mm_for_euclid_dist")
        reach = distance <= (radius + 1e-4 + self.radii)[None, :]
        candidates = torch.nonzero(reach.any(0)[self.leaf_of_point]).reshape(-1)
        near = self.points[candidates]
        partial = torch.addmm(self.points_sq[candidates][None, :], centres, near.t(), beta=1.0, alpha=-2.0)
        hit = (partial <= (radius * radius - (centres * centres).sum(1))[:, None]).any(0)
        return candidates[hit]


def _climb(points: torch.Tensor, seeds: torch.Tensor, bandwidth: float, max_iter: int):
    """Move every seed to the mean of the points within ``bandwidth`` until it stops.

    Follows sklearn's ``_mean_shift_single_seed`` per seed: at most ``max_iter + 1`` updates;
    stop once an update moves the seed by ``<= 1e-3 * bandwidth``. Returns the final positions
    ``(S, D)`` and the number of points within ``bandwidth`` of the position the last update
    started from ``(S,)``; 0 marks a seed that had no point within reach (dropped, as in sklearn).

    Seeds are processed in spatially compact blocks. For each block, the points within
    ``bandwidth + margin`` of the block's seeds (its candidates) are collected; the iterations
    then compare the seeds with the candidates only, until a seed has moved more than ``margin``
    from where the candidates were collected, which triggers a new collection. A point within
    ``bandwidth`` of a seed is always among the candidates, so the result is that of comparing
    with all points.
    """
    s = seeds.shape[0]
    bw2 = bandwidth * bandwidth
    stop = 1e-3 * bandwidth
    margin = CANDIDATE_MARGIN * bandwidth
    neighbourhoods = _Neighbourhoods(points, POINT_LEAF)
    final = seeds.clone()
    intensity = torch.zeros(s, dtype=torch.int64)
    order = np.concatenate(_spatial_leaves(seeds.numpy(), SEED_BLOCK)) if s else np.zeros(0, dtype=np.int64)
    order = torch.from_numpy(order)
    for start in range(0, s, SEED_BLOCK):
        members = order[start:start + SEED_BLOCK]
        current = seeds[members].clone()
        anchor = current.clone()
        active = torch.arange(current.shape[0])
        near = None
        for iteration in range(max_iter + 1):
            here = current[active]
            if near is None or bool(
                (torch.linalg.vector_norm(here - anchor[active], dim=1) > 0.9 * margin).any()
            ):
                anchor[active] = here
                candidates = neighbourhoods.within(here, bandwidth + margin)
                near = points[candidates]
                near_t = near.t().contiguous()
                near_sq = neighbourhoods.points_sq[candidates]
            # |x|^2 - 2 c.x <= bw^2 - |c|^2  <=>  ||x - c|| <= bw
            partial = torch.addmm(near_sq[None, :], here, near_t, beta=1.0, alpha=-2.0)
            within = (partial <= (bw2 - (here * here).sum(1))[:, None]).to(points.dtype)
            count = within.sum(1)
            moved = (within @ near) / count.clamp_min(1.0)[:, None]
            empty = count == 0
            done = empty | (torch.linalg.vector_norm(moved - here, dim=1) <= stop) | (iteration == max_iter)
            finished = members[active[done]]
            final[finished] = moved[done]
            intensity[finished] = count[done].to(torch.int64)
            keep = ~done
            current[active[keep]] = moved[keep]
            active = active[keep]
            if active.numel() == 0:
                break
    return final, intensity


def _suppress_near_duplicates(centers: np.ndarray, intensity: np.ndarray, bandwidth: float) -> np.ndarray:
    """sklearn's post-processing of the converged seeds: the kept modes, strongest first.

    Identical modes are merged (the intensity of the last one counts, as in sklearn's dict);
    the modes are sorted by (intensity, coordinates) descending; a mode within ``bandwidth`` of
    an already kept one is dropped.
    """
    unique, inverse = np.unique(centers, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    strength = np.zeros(len(unique), dtype=np.int64)
    strength[inverse] = intensity  # later assignments win, like later dict entries
    keys = [unique[:, j] for j in range(unique.shape[1] - 1, -1, -1)] + [strength]
    ordered = unique[np.lexsort(keys)[::-1]].astype(np.float64)
    suppressed = np.zeros(len(ordered), dtype=bool)
    kept = []
    for i in range(len(ordered)):
        if suppressed[i]:
            continue
        kept.append(i)
        suppressed |= np.linalg.norm(ordered - ordered[i], axis=1) <= bandwidth
    return ordered[kept]


def _nearest(points: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """Index of the nearest centre of every point (first one on ties), in blocks."""
    labels = np.empty(len(points), dtype=np.int64)
    block = max(1, BLOCK_ELEMENTS // max(len(centers), 1))
    centers_sq = (centers * centers).sum(1)
    for start in range(0, len(points), block):
        chunk = points[start:start + block]
        d2 = centers_sq[None, :] - 2.0 * chunk @ centers.T  # + |x|^2, constant per row
        labels[start:start + block] = np.argmin(d2, axis=1)
    return labels


def mean_shift(points: np.ndarray, bandwidth: float, min_bin_freq: int = 1, max_iter: int = 300) -> np.ndarray:
    """Flat-kernel mean-shift clustering with bin seeding, sklearn's ``MeanShift`` semantics.

    Equivalent to ``sklearn.cluster.MeanShift(bandwidth=bandwidth, bin_seeding=True,
    min_bin_freq=min_bin_freq, max_iter=max_iter, cluster_all=True).fit_predict(points)`` up to
    floating-point rounding:

    * seeds from :func:`bin_seeds` with ``bin_size = bandwidth``;
    * each seed moves to the mean of the points within ``bandwidth`` (inclusive) until a move is
      ``<= 1e-3 * bandwidth`` or after ``max_iter`` iterations; a seed with no point within
      reach is dropped;
    * modes sorted by the number of points within ``bandwidth`` (descending); a mode within
      ``bandwidth`` of an already kept one is dropped;
    * every point gets the label of its nearest kept mode.

    One deliberate difference: where no seed reaches any point (possible in high dimension,
    since a cell centre can lie farther than ``bandwidth`` from the points of its cell) sklearn
    raises ``ValueError``; here the points themselves are used as seeds instead.

    Parameters
    ----------
    points:
        ``(N, D)`` float (computed in float32), embedding units. ``N = 0`` is allowed.
    bandwidth:
        Kernel radius in embedding units (> 0).
    min_bin_freq:
        Minimum number of points in a grid cell for it to seed.
    max_iter:
        Maximum number of iterations per seed.

    Returns
    -------
    ``(N,)`` int64 labels ``0..C-1``; label 0 is the mode with the most points within reach.
    """
    points = np.asarray(points, dtype=np.float32)
    if points.ndim != 2:
        raise ValueError(f"points must have shape (N, D), got {points.shape}")
    if not bandwidth > 0:
        raise ValueError(f"bandwidth must be > 0, got {bandwidth}")
    if len(points) == 0:
        return np.zeros(0, dtype=np.int64)
    if not np.isfinite(points).all():
        raise ValueError("points contain NaN or infinite values")

    # centring changes no distance but keeps |x|^2 small, which the float32 distances need
    offset = points.mean(0, dtype=np.float64).astype(np.float32)
    centred = torch.from_numpy(points - offset)
    seeds = bin_seeds(points, bandwidth, min_bin_freq)
    final, intensity = _climb(centred, torch.from_numpy(seeds - offset), bandwidth, max_iter)
    if not bool((intensity > 0).any()):
        final, intensity = _climb(centred, centred.clone(), bandwidth, max_iter)
    reached = intensity > 0
    centers = final[reached].numpy() + offset
    modes = _suppress_near_duplicates(centers, intensity[reached].numpy(), bandwidth)
    return _nearest(points.astype(np.float64), modes)


def merge_close_clusters(points: np.ndarray, labels: np.ndarray, delta_d: float) -> np.ndarray:
    """The "+" of mean-shift+: merge clusters whose means lie within ``delta_d`` of a larger one.

    Clusters are visited by size, largest first (ties: lower label first). A cluster whose mean
    embedding is within ``delta_d`` (inclusive) of the mean of an already accepted cluster is
    merged into the first such accepted cluster; otherwise it is accepted. Means are those of
    the clusters as given (an accepted cluster's mean is not updated by what merges into it).

    Parameters
    ----------
    points:
        ``(N, D)`` float, embedding units.
    labels:
        ``(N,)`` integer cluster labels; negative labels (no cluster) are left as ``-1``.
    delta_d:
        Merge distance in embedding units.

    Returns
    -------
    ``(N,)`` int64 labels ``0..C'-1`` numbered in the order the clusters were accepted
    (label 0 = the largest input cluster).
    """
    points = np.asarray(points, dtype=np.float64)
    labels = np.asarray(labels).reshape(-1)
    if points.ndim != 2 or len(points) != len(labels):
        raise ValueError(f"points (N, D) and labels (N,) must match, got {points.shape} and {labels.shape}")
    out = np.full(len(labels), -1, dtype=np.int64)
    assigned = labels >= 0
    if not assigned.any():
        return out
    ids, inverse, sizes = np.unique(labels[assigned], return_inverse=True, return_counts=True)
    inverse = inverse.reshape(-1)
    sums = np.zeros((len(ids), points.shape[1]))
    np.add.at(sums, inverse, points[assigned])
    means = sums / sizes[:, None]

    target = np.empty(len(ids), dtype=np.int64)
    accepted: list[int] = []  # indices into ids, in acceptance order
    for j in np.lexsort((ids, -sizes)):
        if accepted:
            close = np.linalg.norm(means[accepted] - means[j], axis=1) <= delta_d
            if close.any():
                target[j] = target[accepted[int(np.argmax(close))]]
                continue
        target[j] = len(accepted)
        accepted.append(int(j))
    out[assigned] = target[inverse]
    return out


def instances_from_embeddings(
    embeddings: np.ndarray | torch.Tensor,
    semantic: np.ndarray | torch.Tensor,
    thing_classes: tuple[int, ...] | list[int] = THING_TRAIN_IDS,
    bandwidth: float = 0.5,
    delta_d: float = 2.0,
    min_size: int = 20,
    min_bin_freq: int = 1,
) -> tuple[np.ndarray, dict[int, int]]:
    """Instance map of one image from its embeddings and semantic map ("mean-shift+").

    For each class of ``thing_classes`` present in ``semantic`` (in the order given), the
    embeddings of that class's pixels are clustered with :func:`mean_shift` (``bandwidth``,
    normally ``delta_v``), then :func:`merge_close_clusters` (``delta_d``); clusters with fewer
    than ``min_size`` pixels are dropped. Instances never cross classes and pixels of any other
    class (stuff, ignore) stay 0.

    Parameters
    ----------
    embeddings:
        ``(D, H, W)`` float embeddings (numpy or torch, any device; read as float32).
    semantic:
        ``(H, W)`` trainIds (uint8), e.g. the semantic pseudo-label.
    thing_classes:
        trainIds to split into instances.
    bandwidth, delta_d:
        Mean-shift radius and merge distance, embedding units.
    min_size:
        Smallest instance kept, in pixels.
    min_bin_freq:
        Passed to :func:`mean_shift`.

    Returns
    -------
    instances:
        ``(H, W)`` int32, 0 = no instance, instances numbered ``1..K`` (class by class; within a
        class in the order :func:`merge_close_clusters` accepted them, the largest first).
    classes:
        ``{instance_id: trainId}`` for ``1..K``.
    """
    if isinstance(embeddings, torch.Tensor):
        embeddings = embeddings.detach().cpu().numpy()
    if isinstance(semantic, torch.Tensor):
        semantic = semantic.detach().cpu().numpy()
    embeddings = np.asarray(embeddings, dtype=np.float32)
    semantic = np.asarray(semantic)
    if embeddings.ndim != 3 or semantic.shape != embeddings.shape[1:]:
        raise ValueError(
            f"expected embeddings (D, H, W) and semantic (H, W), got {embeddings.shape} and {semantic.shape}"
        )
    instances = np.zeros(semantic.shape, dtype=np.int32)
    classes: dict[int, int] = {}
    flat = embeddings.reshape(embeddings.shape[0], -1)
    next_id = 1
    for class_id in thing_classes:
        where = np.flatnonzero(semantic.reshape(-1) == class_id)
        if len(where) == 0:
            continue
        points = flat[:, where].T
        labels = merge_close_clusters(points, mean_shift(points, bandwidth, min_bin_freq), delta_d)
        sizes = np.bincount(labels, minlength=int(labels.max()) + 1)
        for cluster in range(len(sizes)):
            if sizes[cluster] < min_size:
                continue
            instances.reshape(-1)[where[labels == cluster]] = next_id
            classes[next_id] = int(class_id)
            next_id += 1
    return instances, classes
