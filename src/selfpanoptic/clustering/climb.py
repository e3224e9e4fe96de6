"""The mean-shift iterations: every seed climbs to the mean of the points within ``bandwidth``.

:func:`_climb` is the inner loop of :func:`selfpanoptic.clustering.meanshift.mean_shift` (and of
the batched clustering of :mod:`selfpanoptic.clustering.instances`); it is private and lives
apart from :mod:`.meanshift` only to keep that module readable.

Host synchronisations
---------------------
On a GPU every ``bool(tensor)``, boolean-mask index or ``nonzero`` waits for the device. The
iterations of a block of seeds therefore run in windows of :data:`CHECK_EVERY_CUDA` iterations
with no host synchronisation: converged seeds are frozen in place by ``torch.where``, not
removed, and the host looks at the block only between windows (to drop the converged seeds, to
stop, or to collect new candidate points). On the CPU, where a check costs nothing, the window
is :data:`CHECK_EVERY` = 1 iteration.
"""

from __future__ import annotations

import torch

from .kdtree import _group_bounds, _kd_order, _Neighbourhoods

SEED_BLOCK = 128
"""Seeds iterated together by :func:`_climb` on the CPU (a spatially compact group)."""

SEED_BLOCK_CUDA = 1024
"""Seeds iterated together on a GPU, where bigger blocks mean fewer kernel launches."""

PACK_GROUPS = False
"""Whether small groups share blocks of seeds (here) and of points (the label assignment of
:func:`~.meanshift._nearest`) on the CPU: no. A shared block compares every seed or point with
what all its groups hold (masked), arithmetic the CPU pays in full, while the kernel launches and
host synchronisations that sharing saves cost little there (benchmark batch with tight
clusters: 0.19 s instead of 0.21 s of CPU time)."""

PACK_GROUPS_CUDA = True
"""Whether small groups share blocks on a GPU: yes, the blocks run one after the other and each
iteration is a dozen small kernel launches, whatever the size of the block."""

SEED_BLOCK_ELEMENTS = 0
"""On the CPU, no block grows past :data:`SEED_BLOCK` seeds (see :data:`SEED_BLOCK_ELEMENTS_CUDA`)."""

SEED_BLOCK_ELEMENTS_CUDA = 1 << 26
"""On a GPU, a block may hold more than :data:`SEED_BLOCK_CUDA` seeds when its seeds times the
points of its groups (a bound on the distance matrix of one iteration: 256 MiB in float32) stay
within this many elements. The groups of a batch then share few blocks, and the blocks run one
after the other, each iteration a dozen small kernels: on the benchmark batch of
``benchmarks/bench_pseudo_instances.py`` (8 images, 24 groups, 11k seeds), 3 blocks instead of
15, a third of the torch operations and 40 % of the host synchronisations. Chosen by counting
those on the CPU (``--count-ops``), not yet timed on a GPU: tune with that benchmark's
``--gpu-block-elements``."""

CANDIDATE_MARGIN = 0.75
"""How far (in bandwidths) a seed may move before its block's candidate points are collected anew."""

POINT_LEAF = 32
"""Points per ball of the structure that finds the candidate points of a block of seeds."""

CHECK_EVERY = 1
"""Iterations between two looks of the host at a block of seeds, on the CPU.

1 drops converged seeds from the block as soon as they converge (less arithmetic) and keeps the
results bit-identical to checking every iteration; a check costs nothing on the CPU."""

CHECK_EVERY_CUDA = 4
"""Iterations between two looks of the host at a block of seeds, on a GPU.

Each look is a host synchronisation (tens of microseconds, and the device runs dry meanwhile);
an iteration is a dozen small kernels. Between looks, converged seeds stay in the block (wasted
arithmetic, at most ``CHECK_EVERY_CUDA - 1`` iterations of them) and a seed that moved too far
from its candidate points waits, unchanged, for the next look. Neither changes where a seed ends
(only float32 rounding, through the frame of the candidates). Not yet timed on a GPU: tune with
``benchmarks/bench_pseudo_instances.py --gpu-check-every``."""


def _blocks(s: int, block: int, seed_group: torch.Tensor | None, group_points: list[int] | None = None,
            budget: int = 0, pack: bool = True) -> list[tuple[int, int, bool]]:
    """Blocks ``(start, stop, mixed)`` of consecutive seeds (of the k-d order).

    Without groups, blocks of ``block`` seeds. With groups (``group_points``: points of every
    group) and ``pack``, consecutive groups share a block (``mixed``: the block holds several
    groups, told apart by a mask) while it holds at most ``block`` seeds, or more while its seeds
    times the points of its groups stay within ``budget``; a group that does not fit in the
    current block starts a new one (every group does without ``pack``) and, if it does not fit
    alone either, is cut into blocks of ``block`` seeds.
    """
    if seed_group is None:
        return [(start, min(start + block, s), False) for start in range(0, s, block)]
    bounds = _group_bounds(seed_group, s)
    bounds, ids = bounds.tolist(), seed_group[bounds[:-1]].tolist()

    def fits(seeds: int, points: int) -> bool:
        return seeds <= block or seeds * points <= budget

    blocks, start, groups, points = [], 0, 0, 0
    for low, high, group in zip(bounds[:-1], bounds[1:], ids):
        size = group_points[group]
        if start < low and not (pack and fits(high - start, points + size)):  # close the block of the groups before
            blocks.append((start, low, groups > 1))
            start, groups, points = low, 0, 0
        if not fits(high - start, size):
            while high - start > block:
                blocks.append((start, start + block, False))
                start += block
        groups += 1
        points += size
    if start < s:
        blocks.append((start, s, groups > 1))
    return blocks


def _climb(points: torch.Tensor, seeds: torch.Tensor, bandwidth: float, max_iter: int,
           point_group: torch.Tensor | None = None, seed_group: torch.Tensor | None = None):
    """Move every seed to the mean of the points within ``bandwidth`` until it stops.

    Follows sklearn's ``_mean_shift_single_seed`` per seed: at most ``max_iter + 1`` updates;
    stop once an update moves the seed by ``<= 1e-3 * bandwidth``. Returns the final positions
    ``(S, D)`` and the number of points within ``bandwidth`` of the position the last update
    started from ``(S,)``; 0 marks a seed that had no point within reach (dropped, as in sklearn).

    With ``point_group`` ``(N,)`` and ``seed_group`` ``(S,)`` (int64, both non-decreasing) a
    seed only sees the points of its own group: all groups climb in the same blocks, but as if
    each were clustered alone.

    Seeds are processed in spatially compact blocks (consecutive seeds of the k-d order); all
    seeds of a block that have not converged are iterated together. For each block, the points
    within ``bandwidth + margin`` of the block's seeds (its candidates) are collected; the
    iterations then compare the seeds with the candidates only. A seed farther than
    ``0.9 * margin`` from where the candidates were collected is not moved (its candidates may
    miss a point within reach) and makes the next look collect the candidates anew; a point
    within ``bandwidth`` of a moved seed is therefore always among the candidates, so the
    result is that of comparing with all points.

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
    reach = 0.9 * margin
    block = SEED_BLOCK if device.type == "cpu" else SEED_BLOCK_CUDA
    window = CHECK_EVERY if device.type == "cpu" else CHECK_EVERY_CUDA
    budget = SEED_BLOCK_ELEMENTS if device.type == "cpu" else SEED_BLOCK_ELEMENTS_CUDA
    pack = PACK_GROUPS if device.type == "cpu" else PACK_GROUPS_CUDA
    grouped = seed_group is not None
    group_points = None
    if grouped:
        groups = int(point_group[-1]) + 1
        group_points = torch.zeros(groups, dtype=torch.int64, device=device).index_add_(
            0, point_group, torch.ones_like(point_group)).tolist()
    neighbourhoods = _Neighbourhoods(points, POINT_LEAF, point_group)
    final = seeds.clone()
    intensity = torch.zeros(s, dtype=torch.int64, device=device)
    order = _kd_order(seeds, block, seed_group)[0] if s else torch.zeros(0, dtype=torch.int64, device=device)
    for start, end, mixed in _blocks(s, block, seed_group, group_points, budget, pack):
        members = order[start:end]  # the seeds of the block still climbing
        here = seeds[members].clone()
        steps = torch.zeros(len(members), dtype=torch.int64, device=device)  # updates done, per seed
        collect = True
        while True:
            if collect:
                anchor = here.clone()
                group_here = seed_group[members] if grouped else None
                candidates = neighbourhoods.within(here, bandwidth + margin, group_here)
                origin = here.mean(0)
                near = points[candidates] - origin
                count_c = near.shape[0]
                # rows: x (D), 1, -|x|^2  -- columns: the candidates
                right = torch.cat([near.t(), torch.ones((1, count_c), dtype=dtype, device=device),
                                   -(near * near).sum(1)[None, :]])
                near_ones = torch.cat([near, torch.ones((count_c, 1), dtype=dtype, device=device)], dim=1)
                # bool, not float: on a GPU the block of a batch can be large
                other = group_here[:, None] != point_group[candidates][None, :] if mixed else None
                buffer = torch.empty((len(members), count_c), dtype=dtype, device=device)
            m = here.shape[0]
            ones = torch.ones((m, 1), dtype=dtype, device=device)
            for i in range(window):
                local = here - origin
                left = torch.cat([2.0 * local, (bw2 - (local * local).sum(1))[:, None], ones], dim=1)
                within = torch.mm(left, right, out=buffer[:m])  # bw^2 - |x - c|^2
                within.ge_(0.0)  # in place: 1.0 within reach (inclusive), else 0.0
                if other is not None:
                    within.masked_fill_(other, 0.0)
                sums = within @ near_ones
                count = sums[:, dim]
                moved = sums[:, :dim] / count.clamp_min(1.0)[:, None] + origin
                done = (count == 0) | (torch.linalg.vector_norm(moved - here, dim=1) <= stop) | (steps == max_iter)
                if i == 0:  # the last look left every climbing seed near the anchor: all move
                    climbing, counted, here = ~done, count, moved
                    steps += 1
                    continue
                # a seed too far from the candidates' anchor waits (unchanged) for new candidates
                move = climbing & (torch.linalg.vector_norm(here - anchor, dim=1) <= reach)
                done &= move
                counted = torch.where(done, count, counted)
                here = torch.where(move[:, None], moved, here)
                steps += move
                climbing &= ~done
            n_climbing, far = torch.stack([
                climbing.sum(), (climbing & (torch.linalg.vector_norm(here - anchor, dim=1) > reach)).sum(),
            ]).tolist()
            if n_climbing < m:  # drop the converged seeds from the block
                finished = torch.nonzero(~climbing).reshape(-1)
                final[members[finished]] = here[finished]
                intensity[members[finished]] = counted[finished].to(torch.int64)
                keep = torch.nonzero(climbing).reshape(-1)
                members, here, anchor, steps = members[keep], here[keep], anchor[keep], steps[keep]
                if other is not None:
                    other = other[keep]
            if n_climbing == 0:
                break
            collect = bool(far)
    return final, intensity
