"""Mean-shift+ clustering of embeddings: :func:`mean_shift`, :func:`bin_seeds`,
:func:`merge_close_clusters`.

The steps and their use are described in :mod:`selfpanoptic.clustering`; the per-image driver is
:func:`selfpanoptic.clustering.instances.instances_from_embeddings`.

Devices and types
-----------------
Everything runs in torch, one code path for the CPU and CUDA: binning, the k-d ordering of the
seeds and points, the mean-shift iterations (all seeds of a block of spatially close seeds
iterated together), the deduplication of the modes, the assignment of the points and the merge.
Every public function takes ``device=None``: by default the device of the input tensor, or the
CPU for numpy input. numpy in gives numpy out (as before); torch in gives torch out, on
``device``. Python loops run over seed blocks, iterations and *kept* modes / accepted clusters,
never over points.

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

from .kdtree import _kd_order, _Neighbourhoods

BLOCK_ELEMENTS = 1 << 22
"""Points x modes elements per distance block of the final label assignment (16 MiB in float32)."""

SEED_BLOCK = 128
"""Seeds iterated together by :func:`mean_shift` on the CPU (a spatially compact group)."""

SEED_BLOCK_CUDA = 1024
"""Seeds iterated together on a GPU, where bigger blocks mean fewer kernel launches."""

CANDIDATE_MARGIN = 0.75
"""How far (in bandwidths) a seed may move before its block's candidate points are collected anew."""

POINT_LEAF = 32
"""Points per ball of the structure that finds the candidate points of a block of seeds."""

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


def _bin_seeds(points: torch.Tensor, bin_size: float, min_bin_freq: int) -> torch.Tensor:
    """:func:`bin_seeds` on a float32 tensor, on its device."""
    n = points.shape[0]
    if n == 0:
        return points.clone()
    size = torch.tensor(bin_size, dtype=torch.float32, device=points.device)
    cells = torch.round(points / size) + 0.0  # halves to even like numpy; + 0 turns -0.0 into 0.0
    unique, inverse, counts = torch.unique(cells, dim=0, return_inverse=True, return_counts=True)
    first = torch.full((len(unique),), n, dtype=torch.int64, device=points.device)
    first.scatter_reduce_(0, inverse.reshape(-1), torch.arange(n, device=points.device), reduce="amin")
    order = torch.argsort(first)
    seeds = unique[order][counts[order] >= min_bin_freq]
    if len(seeds) == n:
        return points.clone()
    return seeds * size


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
    seeds = _bin_seeds(x, bin_size, min_bin_freq)
    return seeds.cpu().numpy() if as_numpy else seeds


def _climb(points: torch.Tensor, seeds: torch.Tensor, bandwidth: float, max_iter: int):
    """Move every seed to the mean of the points within ``bandwidth`` until it stops.

    Follows sklearn's ``_mean_shift_single_seed`` per seed: at most ``max_iter + 1`` updates;
    stop once an update moves the seed by ``<= 1e-3 * bandwidth``. Returns the final positions
    ``(S, D)`` and the number of points within ``bandwidth`` of the position the last update
    started from ``(S,)``; 0 marks a seed that had no point within reach (dropped, as in sklearn).

    Seeds are processed in spatially compact blocks (consecutive seeds of the k-d order); all
    seeds of a block that have not converged are iterated together. For each block, the points
    within ``bandwidth + margin`` of the block's seeds (its candidates) are collected; the
    iterations then compare the seeds with the candidates only, until a seed has moved more than
    ``margin`` from where the candidates were collected, which triggers a new collection. A point
    within ``bandwidth`` of a seed is always among the candidates, so the result is that of
    comparing with all points.

    One iteration is two matrix products: ``[2c, bw^2 - |c|^2, 1] @ [x; 1; -|x|^2]`` gives
    ``bw^2 - |x - c|^2`` (>= 0: within reach, written as 1.0 / 0.0 in place), then
    ``within @ [x, 1]`` gives the sums and counts of the points within reach. Both run in a frame
    centred on the block's seeds at the last collection.
    """
    device, dtype = points.device, points.dtype
    s, dim = seeds.shape
    bw2 = bandwidth * bandwidth
    stop = 1e-3 * bandwidth
    margin = CANDIDATE_MARGIN * bandwidth
    block = SEED_BLOCK if device.type == "cpu" else SEED_BLOCK_CUDA
    neighbourhoods = _Neighbourhoods(points, POINT_LEAF)
    final = seeds.clone()
    intensity = torch.zeros(s, dtype=torch.int64, device=device)
    order = _kd_order(seeds, block)[0] if s else torch.zeros(0, dtype=torch.int64, device=device)
    for start in range(0, s, block):
        members = order[start:start + block]
        current = seeds[members].clone()
        anchor = current.clone()
        active = torch.arange(current.shape[0], device=device)
        origin = None
        for iteration in range(max_iter + 1):
            here = current[active]
            if origin is None or bool(
                (torch.linalg.vector_norm(here - anchor[active], dim=1) > 0.9 * margin).any()
            ):
                anchor[active] = here
                candidates = neighbourhoods.within(here, bandwidth + margin)
                origin = here.mean(0)
                near = points[candidates] - origin
                count_c = near.shape[0]
                # rows: x (D), 1, -|x|^2  -- columns: the candidates
                right = torch.cat([near.t(), torch.ones((1, count_c), dtype=dtype, device=device),
                                   -(near * near).sum(1)[None, :]])
                near_ones = torch.cat([near, torch.ones((count_c, 1), dtype=dtype, device=device)], dim=1)
                buffer = torch.empty((len(active), count_c), dtype=dtype, device=device)
            local = here - origin
            m = local.shape[0]
            left = torch.cat([2.0 * local, (bw2 - (local * local).sum(1))[:, None],
                              torch.ones((m, 1), dtype=dtype, device=device)], dim=1)
            within = torch.mm(left, right, out=buffer[:m])  # bw^2 - |x - c|^2
            within.ge_(0.0)  # in place: 1.0 within reach (inclusive), else 0.0
            sums = within @ near_ones
            count = sums[:, dim]
            moved = sums[:, :dim] / count.clamp_min(1.0)[:, None] + origin
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


def _greedy_cover(points: torch.Tensor, radius: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Accept points in order unless within ``radius`` (inclusive) of an accepted one.

    Returns the indices of the accepted points ``(K,)`` (in order) and, for every point, the
    number ``0..K-1`` of the first accepted point within ``radius`` of it (itself if accepted).
    The loop runs once per *accepted* point: accepting ``j`` settles every later undecided point
    within reach of ``j`` (an earlier accepted point would have settled it already).
    """
    n = points.shape[0]
    device = points.device
    owner = torch.full((n,), -1, dtype=torch.int64, device=device)
    undecided = torch.ones(n, dtype=torch.bool, device=device)
    accepted = []
    j = 0
    while j < n:
        rest = undecided[j:]
        step, free = torch.stack([torch.argmax(rest.to(torch.uint8)), rest.any().to(torch.int64)]).tolist()
        if not free:
            break
        j += step
        close = (torch.linalg.vector_norm(points[j:] - points[j], dim=1) <= radius) & undecided[j:]
        close[0] = True
        owner[j:][close] = len(accepted)
        undecided[j:] &= ~close
        accepted.append(j)
        j += 1
    return torch.tensor(accepted, dtype=torch.int64, device=device), owner


def _suppress_near_duplicates(centers: torch.Tensor, intensity: torch.Tensor, bandwidth: float) -> torch.Tensor:
    """sklearn's post-processing of the converged seeds: the kept modes, strongest first.

    Identical modes are merged (the intensity of the last one counts, as in sklearn's dict);
    the modes are sorted by (intensity, coordinates) descending; a mode within ``bandwidth`` of
    an already kept one is dropped (distances in :func:`_decision_dtype`).
    """
    device = centers.device
    unique, inverse = torch.unique(centers, dim=0, return_inverse=True)  # rows ascending
    last = torch.full((len(unique),), -1, dtype=torch.int64, device=device)
    last.scatter_reduce_(0, inverse.reshape(-1), torch.arange(len(centers), device=device), reduce="amax")
    strength = intensity[last]  # later entries win, like later dict entries
    order = torch.arange(len(unique) - 1, -1, -1, device=device)  # coordinates descending
    order = order[torch.argsort(strength[order], descending=True, stable=True)]
    ordered = unique[order]
    kept, _ = _greedy_cover(ordered.to(_decision_dtype(device)), bandwidth)
    return ordered[kept]


def _nearest(points: torch.Tensor, centers: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
    """Index of the nearest centre of every point (first one on ties), in blocks.

    Squared distances (less ``|x|^2``) in float32 through a matrix product, in the frame centred
    on ``offset``; a point whose two nearest centres are closer than the float32 rounding bound
    is decided again with direct distances in :func:`_decision_dtype`.
    """
    n, dim = points.shape
    device = points.device
    labels = torch.zeros(n, dtype=torch.int64, device=device)
    if len(centers) < 2:
        return labels
    local = centers - offset
    local_sq = (local * local).sum(1)
    bound = 4.0 * (dim + 2) * _EPS32  # rounding of |c|^2 - 2 x.c, relative to |x|^2 + 2 max |c|^2
    block = max(1, BLOCK_ELEMENTS // len(centers))
    precise = _decision_dtype(device)
    for start in range(0, n, block):
        chunk = points[start:start + block]
        centred = chunk - offset
        d2 = torch.addmm(local_sq[None, :], centred, local.t(), beta=1.0, alpha=-2.0)
        best, index = torch.topk(d2, 2, dim=1, largest=False)
        tolerance = bound * ((centred * centred).sum(1) + 2.0 * local_sq.max())
        chosen = index[:, 0]
        unsure = torch.nonzero(best[:, 1] - best[:, 0] <= tolerance).reshape(-1)
        if unsure.numel():
            exact = torch.cdist(chunk[unsure].to(precise), centers.to(precise),
                                compute_mode="donot_use_mm_for_euclid_dist")
            chosen[unsure] = torch.argmin(exact, dim=1)
        labels[start:start + block] = chosen
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
            labels = _mean_shift(x, float(bandwidth), min_bin_freq, max_iter)
    return labels.cpu().numpy() if as_numpy else labels


def _mean_shift(x: torch.Tensor, bandwidth: float, min_bin_freq: int, max_iter: int) -> torch.Tensor:
    # centring changes no distance but keeps |x|^2 small, which the float32 distances need
    offset = x.mean(0, dtype=torch.float64).to(torch.float32)
    centred = x - offset
    seeds = _bin_seeds(x, bandwidth, min_bin_freq)
    final, intensity = _climb(centred, seeds - offset, bandwidth, max_iter)
    if not bool((intensity > 0).any()):
        final, intensity = _climb(centred, centred.clone(), bandwidth, max_iter)
    reached = intensity > 0
    centers = final[reached] + offset
    modes = _suppress_near_duplicates(centers, intensity[reached], bandwidth)
    return _nearest(x, modes, offset)


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
    out = torch.full((len(lab),), -1, dtype=torch.int64, device=dev)
    assigned = lab >= 0
    if bool(assigned.any()):
        ids, inverse, sizes = torch.unique(lab[assigned], return_inverse=True, return_counts=True)
        inverse = inverse.reshape(-1)
        sums = torch.zeros((len(ids), x.shape[1]), dtype=precise, device=dev).index_add_(0, inverse, x[assigned])
        means = sums / sizes[:, None].to(precise)
        visit = torch.argsort(sizes, descending=True, stable=True)  # ids ascending: ties, lower label first
        _, owner = _greedy_cover(means[visit], delta_d)
        target = torch.empty_like(owner).scatter_(0, visit, owner)
        out[assigned] = target[inverse]
    return out.cpu().numpy() if as_numpy else out
