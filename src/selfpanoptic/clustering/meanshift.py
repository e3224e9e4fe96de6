"""Mean-shift+ clustering of embeddings: :func:`mean_shift`, :func:`bin_seeds`,
:func:`merge_close_clusters`.

The steps and their use are described in :mod:`selfpanoptic.clustering`; the driver that
clusters the thing classes of a batch of images is
:func:`selfpanoptic.clustering.instances.instances_from_embeddings_batch`. The mean-shift
iterations themselves are in :mod:`.climb`.

Groups
------
The private functions also cluster several independent point sets (*groups*: one per image and
thing class of a batch) in one go: the points come sorted by group with an int64 group index,
and a point only ever interacts with the seeds, modes and clusters of its own group (masks and
per-group ranges, no geometric separation), so each group's result is the one it gets alone.
The public functions are the one-group case.

Devices and types
-----------------
Everything runs in torch, one code path for the CPU and CUDA: binning, the k-d ordering of the
seeds and points, the mean-shift iterations (all seeds of a block of spatially close seeds
iterated together), the deduplication of the modes, the assignment of the points and the merge.
Every public function takes ``device=None``: by default the device of the input tensor, or the
CPU for numpy input. numpy in gives numpy out (as before); torch in gives torch out, on
``device``. Python loops run over seed blocks, iterations and *kept* modes / accepted clusters
(of the busiest group), never over points.

Precision
---------
* The iterations run in float32 on every device. That is also what sklearn does with float32
  embeddings (its means are float32 ``np.mean``), and it keeps CPU and CUDA on the same
  arithmetic. The point-to-seed distances are computed by a matrix product in a frame centred on
  each block of seeds, so that ``|x|^2`` stays small and the float32 rounding of the expanded
  squared distance stays ~1e-6 of ``bandwidth^2``. Matrix products are forced to full float32
  (no TF32 / bf16) while this module computes, whatever ``torch.set_float32_matmul_precision``
  says.
* The decisions that compare distances between modes (deduplication of the modes, the merge)
  and the nearest-mode assignment of points whose two nearest modes are too close to call in
  float32 run in float64 on the CPU (as the previous numpy code did) and float32 on CUDA.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import numpy as np
import torch

from . import climb
from .climb import _climb
from .cover import _greedy_cover

BLOCK_ELEMENTS = 1 << 22
"""Points x modes elements per distance block of the final label assignment (16 MiB in float32)."""

_EPS32 = float(np.finfo(np.float32).eps)


# --- helpers --------------------------------------------------------------------------------------


def _device(device: str | torch.device | None, *inputs) -> torch.device:
    """``device``, else the device of the first tensor among ``inputs``, else the CPU."""
    if device is not None:
        return torch.device(device)
    for x in inputs:
        if isinstance(x, torch.Tensor):
            return x.device
    return torch.device("cpu")


def _tensor(x, device: torch.device, dtype: torch.dtype | None = None) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x.detach().to(device=device, dtype=dtype)
    array = np.asarray(x)
    if not array.flags.writeable:  # torch warns about read-only arrays (e.g. broadcast views)
        array = array.copy()
    return torch.as_tensor(array, dtype=dtype, device=device)


def _decision_dtype(device: torch.device) -> torch.dtype:
    """float64 on the CPU, float32 elsewhere (GPUs: float64 is slow on most of them)."""
    return torch.float64 if device.type == "cpu" else torch.float32


def _counts(index: torch.Tensor, length: int) -> torch.Tensor:
    """``torch.bincount(index, minlength=length)`` for indices below ``length``, without the host
    synchronisation CUDA's bincount makes (it reads the maximum to size its output)."""
    return torch.zeros(length, dtype=torch.int64, device=index.device).index_add_(0, index, torch.ones_like(index))


@contextlib.contextmanager
def _full_float32_matmul() -> Iterator[None]:
    """Run float32 matrix products in full float32, not TF32 / bf16, and restore the setting."""
    previous = torch.get_float32_matmul_precision()
    if previous == "highest":
        yield
        return
    torch.set_float32_matmul_precision("highest")
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(previous)

# --- mean shift -----------------------------------------------------------------------------------


def _bin_seeds(points: torch.Tensor, bin_size: float, min_bin_freq: int,
               group: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """:func:`bin_seeds` on a float32 tensor, on its device; with ``group``, for every group alone.

    ``group``: ``(N,)`` int64, non-decreasing, or None (one group). Returns the seeds ``(S, D)``
    and their groups ``(S,)`` (None without ``group``); the seeds of a group are those
    :func:`bin_seeds` gives for its points alone, and come group by group.
    """
    n = points.shape[0]
    if n == 0:
        return points.clone(), group
    size = torch.tensor(bin_size, dtype=torch.float32, device=points.device)
    cells = torch.round(points / size) + 0.0  # halves to even like numpy; + 0 turns -0.0 into 0.0
    key = cells if group is None else torch.cat([cells, group[:, None].to(torch.float32)], dim=1)
    unique, inverse, counts = torch.unique(key, dim=0, return_inverse=True, return_counts=True)
    first = torch.full((len(unique),), n, dtype=torch.int64, device=points.device)
    first.scatter_reduce_(0, inverse.reshape(-1), torch.arange(n, device=points.device), reduce="amin")
    order = torch.argsort(first)
    kept = counts[order] >= min_bin_freq
    seeds, first = unique[order][kept][:, :points.shape[1]], first[order][kept]
    if group is None:
        if len(seeds) == n:
            return points.clone(), None
        return seeds * size, None
    # as many seeds as points in a group: the group's points are its seeds (all cells hold one)
    seed_group = group[first]
    groups = int(group[-1]) + 1
    alone = _counts(seed_group, groups) == _counts(group, groups)
    return torch.where(alone[seed_group][:, None], points[first], seeds * size), seed_group


def bin_seeds(points, bin_size: float, min_bin_freq: int = 1, *, device=None):
    """Seeds of :func:`mean_shift`: the centres of the occupied cells of a grid, as in sklearn.

    Every point is rounded to the grid of spacing ``bin_size`` (``round(x / bin_size)``, halves
    to even, per coordinate); each cell holding at least ``min_bin_freq`` points gives one seed
    at ``cell * bin_size``. Seeds come in the order in which their cells first occur in
    ``points``. When there are as many seeds as points, the points themselves are returned
    (sklearn does the same: binning then saves nothing).

    Parameters
    ----------
    points:
        ``(N, D)`` float32 (numpy array or tensor), embedding units.
    bin_size:
        Grid spacing in embedding units (:func:`mean_shift` uses the bandwidth).
    min_bin_freq:
        Minimum number of points in a cell for it to give a seed.
    device:
        Where to compute; default: the device of a tensor ``points``, else the CPU.

    Returns
    -------
    ``(S, D)`` float32 seeds, numpy for numpy input, else a tensor on ``device``; ``S`` may be 0
    when no cell is full enough.
    """
    as_numpy = not isinstance(points, torch.Tensor)
    dev = _device(device, points)
    x = _tensor(points, dev, torch.float32)
    if x.ndim != 2:
        if x.numel():
            raise ValueError(f"points must have shape (N, D), got {tuple(x.shape)}")
        x = x.reshape(0, 0)
    seeds = _bin_seeds(x, bin_size, min_bin_freq)[0]
    return seeds.cpu().numpy() if as_numpy else seeds


def _suppress_near_duplicates(centers: torch.Tensor, intensity: torch.Tensor, bandwidth: float,
                              group: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """sklearn's post-processing of the converged seeds: the kept modes, strongest first.

    Identical modes are merged (the intensity of the last one counts, as in sklearn's dict);
    the modes are sorted by (intensity, coordinates) descending; a mode within ``bandwidth`` of
    an already kept one is dropped (distances in :func:`_decision_dtype`). With ``group``
    (``(S,)`` int64) every group is processed alone; the modes ``(M, D)`` then come group by
    group (strongest first within a group) with their groups ``(M,)``, else the groups are None.
    """
    device, dim = centers.device, centers.shape[1]
    key = centers if group is None else torch.cat([centers, group[:, None].to(centers.dtype)], dim=1)
    unique, inverse = torch.unique(key, dim=0, return_inverse=True)  # rows ascending
    last = torch.full((len(unique),), -1, dtype=torch.int64, device=device)
    last.scatter_reduce_(0, inverse.reshape(-1), torch.arange(len(centers), device=device), reduce="amax")
    strength = intensity[last]  # later entries win, like later dict entries
    order = torch.arange(len(unique) - 1, -1, -1, device=device)  # coordinates descending
    order = order[torch.argsort(strength[order], descending=True, stable=True)]
    ordered = unique[order]
    ordered_group = ordered[:, dim].to(torch.int64) if group is not None else None
    kept, _ = _greedy_cover(ordered[:, :dim].to(_decision_dtype(device)), bandwidth, ordered_group)
    modes = ordered[kept, :dim]
    if group is None:
        return modes, None
    by_group = torch.argsort(ordered_group[kept], stable=True)
    return modes[by_group], ordered_group[kept][by_group]


def _spans(n: int, m: int, group, center_group, groups: int, pack: bool) -> list[tuple[int, int, int, int]]:
    """Blocks ``(p0, p1, c0, c1)`` of :func:`_nearest`: points ``p0:p1`` against centres ``c0:c1``.

    With ``pack`` (see :data:`~.climb.PACK_GROUPS`), consecutive groups share a block while
    ``points x centres`` stays within :data:`BLOCK_ELEMENTS`; else every group has blocks of
    its own. Either way a point is only compared with the centres of its or nearby groups.
    """
    if group is None:
        block = max(1, BLOCK_ELEMENTS // m)
        return [(start, min(start + block, n), 0, m) for start in range(0, n, block)]
    edges = torch.arange(groups + 1, device=group.device)
    bounds = torch.stack([torch.searchsorted(group, edges), torch.searchsorted(center_group, edges)]).tolist()
    p, c = bounds
    spans, g = [], 0
    while g < groups:
        h = g + 1
        while pack and h < groups and (p[h + 1] - p[g]) * (c[h + 1] - c[g]) <= BLOCK_ELEMENTS:
            h += 1
        block = max(1, BLOCK_ELEMENTS // max(1, c[h] - c[g]))
        spans += [(start, min(start + block, p[h]), c[g], c[h]) for start in range(p[g], p[h], block)]
        g = h
    return spans


def _nearest(points: torch.Tensor, centers: torch.Tensor, offset: torch.Tensor,
             group: torch.Tensor | None = None, center_group: torch.Tensor | None = None) -> torch.Tensor:
    """Index of the nearest centre of every point (first one on ties), in blocks.

    Squared distances (less ``|x|^2``) in float32 through a matrix product, in the frame centred
    on ``offset``; a point whose two nearest centres are closer than the float32 rounding bound
    is decided again with direct distances in :func:`_decision_dtype`. With ``group`` and
    ``center_group`` (int64, both non-decreasing) a point only looks at the centres of its own
    group, and ``offset`` is ``(G, D)``: the frame of each group.
    """
    n, dim = points.shape
    device = points.device
    labels = torch.zeros(n, dtype=torch.int64, device=device)
    if len(centers) < 2:
        return labels
    bound = 4.0 * (dim + 2) * _EPS32  # rounding of |c|^2 - 2 x.c, relative to |x|^2 + 2 max |c|^2
    precise = _decision_dtype(device)
    pack = climb.PACK_GROUPS if device.type == "cpu" else climb.PACK_GROUPS_CUDA
    for p0, p1, c0, c1 in _spans(n, len(centers), group, center_group, len(offset) if group is not None else 1, pack):
        if c1 - c0 < 2:
            labels[p0:p1] = c0
            continue
        chunk, near = points[p0:p1], centers[c0:c1]
        if group is None:
            centred, local = chunk - offset, near - offset
        else:
            centred, local = chunk - offset[group[p0:p1]], near - offset[center_group[c0:c1]]
        local_sq = (local * local).sum(1)
        d2 = torch.addmm(local_sq[None, :], centred, local.t(), beta=1.0, alpha=-2.0)
        other = group[p0:p1, None] != center_group[None, c0:c1] if group is not None else None
        if other is not None:
            d2.masked_fill_(other, float("inf"))
        best, index = torch.topk(d2, 2, dim=1, largest=False)
        tolerance = bound * ((centred * centred).sum(1) + 2.0 * local_sq.max())
        chosen = index[:, 0]
        unsure = torch.nonzero(best[:, 1] - best[:, 0] <= tolerance).reshape(-1)
        if unsure.numel():
            exact = torch.cdist(chunk[unsure].to(precise), near.to(precise),
                                compute_mode="donot_use_mm_for_euclid_dist")
            if other is not None:
                exact.masked_fill_(other[unsure], float("inf"))
            chosen[unsure] = torch.argmin(exact, dim=1)
        labels[p0:p1] = chosen + c0
    return labels


def mean_shift(points, bandwidth: float, min_bin_freq: int = 1, max_iter: int = 300, *, device=None):
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
        ``(N, D)`` float numpy array or tensor (computed in float32), embedding units.
        ``N = 0`` is allowed.
    bandwidth:
        Kernel radius in embedding units (> 0).
    min_bin_freq:
        Minimum number of points in a grid cell for it to seed.
    max_iter:
        Maximum number of iterations per seed.
    device:
        Where to compute; default: the device of a tensor ``points``, else the CPU.

    Returns
    -------
    ``(N,)`` int64 labels ``0..C-1``; label 0 is the mode with the most points within reach.
    A numpy array for numpy input, else a tensor on ``device``.
    """
    as_numpy = not isinstance(points, torch.Tensor)
    dev = _device(device, points)
    x = _tensor(points, dev, torch.float32)
    if x.ndim != 2:
        raise ValueError(f"points must have shape (N, D), got {tuple(x.shape)}")
    if not bandwidth > 0:
        raise ValueError(f"bandwidth must be > 0, got {bandwidth}")
    if len(x) == 0:
        labels = torch.zeros(0, dtype=torch.int64, device=dev)
    else:
        if not bool(torch.isfinite(x).all()):
            raise ValueError("points contain NaN or infinite values")
        with _full_float32_matmul():
            labels = _mean_shift(x, float(bandwidth), min_bin_freq, max_iter)[0]
    return labels.cpu().numpy() if as_numpy else labels


def _mean_shift(x: torch.Tensor, bandwidth: float, min_bin_freq: int, max_iter: int,
                group: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """:func:`mean_shift` of float32 points ``x`` ``(N, D)``, ``N > 0``; with ``group``, of every group alone.

    ``group``: ``(N,)`` int64, non-decreasing (the points come group by group), or None. Returns
    the labels ``(N,)`` int64 and the group of every mode ``(M,)`` (None without ``group``):
    modes are numbered group by group, within a group as :func:`mean_shift` numbers them.
    """
    # centring changes no distance but keeps |x|^2 small, which the float32 distances need
    if group is None:
        offset = x.mean(0, dtype=torch.float64).to(torch.float32)
        shift = offset
    else:
        groups = int(group[-1]) + 1
        sums = torch.zeros((groups, x.shape[1]), dtype=torch.float64, device=x.device).index_add_(0, group, x.double())
        offset = (sums / _counts(group, groups).clamp_min(1)[:, None]).to(torch.float32)
        shift = offset[group]
    centred = x - shift
    seeds, seed_group = _bin_seeds(x, bandwidth, min_bin_freq, group)
    seed_shift = offset if group is None else offset[seed_group]
    final, intensity = _climb(centred, seeds - seed_shift, bandwidth, max_iter, group, seed_group)
    if group is None:
        if not bool((intensity > 0).any()):
            final, intensity = _climb(centred, centred.clone(), bandwidth, max_iter)
    else:  # the same fall-back (see mean_shift) for every group that no seed reached
        reached = _counts(seed_group[intensity > 0], groups) > 0
        lost = torch.nonzero(~reached[group]).reshape(-1)
        if lost.numel():
            more, more_intensity = _climb(centred, centred[lost], bandwidth, max_iter, group, group[lost])
            final, intensity = torch.cat([final, more]), torch.cat([intensity, more_intensity])
            seed_group = torch.cat([seed_group, group[lost]])
            seed_shift = offset[seed_group]
    reached = intensity > 0
    centers = final[reached] + (seed_shift if group is None else seed_shift[reached])
    modes, mode_group = _suppress_near_duplicates(
        centers, intensity[reached], bandwidth, None if group is None else seed_group[reached])
    return _nearest(x, modes, offset, group, mode_group), mode_group


# --- merging close clusters -----------------------------------------------------------------------


def merge_close_clusters(points, labels, delta_d: float, *, device=None):
    """The "+" of mean-shift+: merge clusters whose means lie within ``delta_d`` of a larger one.

    Clusters are visited by size, largest first (ties: lower label first). A cluster whose mean
    embedding is within ``delta_d`` (inclusive) of the mean of an already accepted cluster is
    merged into the first such accepted cluster; otherwise it is accepted. Means are those of
    the clusters as given (an accepted cluster's mean is not updated by what merges into it).

    Parameters
    ----------
    points:
        ``(N, D)`` float numpy array or tensor, embedding units.
    labels:
        ``(N,)`` integer cluster labels (numpy or tensor); negative labels (no cluster) are left
        as ``-1``.
    delta_d:
        Merge distance in embedding units.
    device:
        Where to compute; default: the device of the first tensor among ``points`` and
        ``labels``, else the CPU. Means and distances are float64 on the CPU, float32 on CUDA.

    Returns
    -------
    ``(N,)`` int64 labels ``0..C'-1`` numbered in the order the clusters were accepted
    (label 0 = the largest input cluster); a tensor on ``device`` when ``points`` or ``labels``
    is a tensor, else a numpy array.
    """
    as_numpy = not (isinstance(points, torch.Tensor) or isinstance(labels, torch.Tensor))
    dev = _device(device, points, labels)
    precise = _decision_dtype(dev)
    x = _tensor(points, dev, precise)
    lab = _tensor(labels, dev).reshape(-1).to(torch.int64)
    if x.ndim != 2 or len(x) != len(lab):
        raise ValueError(
            f"points (N, D) and labels (N,) must match, got {tuple(x.shape)} and {tuple(lab.shape)}")
    out = _merge(x, lab, delta_d)[0]
    return out.cpu().numpy() if as_numpy else out


def _merge(x: torch.Tensor, lab: torch.Tensor, delta_d: float,
           label_group: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """:func:`merge_close_clusters` of points ``x`` ``(N, D)`` (in :func:`_decision_dtype`) and labels ``(N,)`` int64.

    With ``label_group`` (the group of every label ``0..L-1``, ``(L,)`` int64) clusters of
    different groups never merge, and the group of every output cluster ``(C',)`` is returned
    too (else None). Output clusters are numbered in the order they were accepted, all groups
    together: within a group, in that group's acceptance order.
    """
    out = torch.full((len(lab),), -1, dtype=torch.int64, device=x.device)
    assigned = lab >= 0
    if not bool(assigned.any()):
        return out, None if label_group is None else label_group[:0]
    ids, inverse, sizes = torch.unique(lab[assigned], return_inverse=True, return_counts=True)
    inverse = inverse.reshape(-1)
    sums = torch.zeros((len(ids), x.shape[1]), dtype=x.dtype, device=x.device).index_add_(0, inverse, x[assigned])
    means = sums / sizes[:, None].to(x.dtype)
    visit = torch.argsort(sizes, descending=True, stable=True)  # ids ascending: ties, lower label first
    visit_group = None if label_group is None else label_group[ids[visit]]
    accepted, owner = _greedy_cover(means[visit], delta_d, visit_group)
    target = torch.empty_like(owner).scatter_(0, visit, owner)
    out[assigned] = target[inverse]
    return out, None if label_group is None else visit_group[accepted]
