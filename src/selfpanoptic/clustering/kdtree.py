"""Spatial grouping for mean-shift: a k-d ordering of points and small balls of near points.

:func:`_kd_order` orders seeds and points so that near ones are near each other (the leaves of a
k-d tree); :class:`_Neighbourhoods` uses those leaves to find the points within reach of a block
of seeds. Both are torch, on the device of their input, and private to
:mod:`selfpanoptic.clustering.meanshift`; they live apart only to keep that module readable.

Both know *groups* (the (image, class) sets that a batch clusters side by side, see
:func:`selfpanoptic.clustering.instances.instances_from_embeddings_batch`): the points come
sorted by group, a leaf never holds two groups, and a point is only ever "within reach" of a
centre of its own group. Groups are kept apart by these labels, not by moving them apart in
space, so the float32 distances of a group are those it would have on its own.
"""

from __future__ import annotations

import torch


def _group_bounds(group: torch.Tensor | None, n: int) -> torch.Tensor:
    """Boundaries ``(P + 1,)`` of the runs of equal values of a sorted ``group`` ``(n,)`` (None: one run)."""
    if group is None or n == 0:
        return torch.tensor([0, n], device=group.device if group is not None else "cpu")
    counts = torch.unique_consecutive(group, return_counts=True)[1]
    return torch.cat([counts.new_zeros(1), torch.cumsum(counts, 0)])


def _kd_order(points: torch.Tensor, leaf: int, group: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Order the points so that near points are near each other: the leaves of a k-d tree.

    Every part larger than ``leaf`` is split at its median along the coordinate with the largest
    range, all parts of a tree level at once (two stable sorts per level). Returns the order
    ``(N,)`` and the leaf boundaries ``(L + 1,)`` in it (leaf ``i`` is
    ``order[bounds[i]:bounds[i + 1]]``, first halves before second halves). With ``group``
    (``(N,)`` int64, non-decreasing) the groups are the first parts: no leaf spans two groups.
    """
    n, dim = points.shape
    device = points.device
    order = torch.arange(n, device=device)
    bounds = _group_bounds(group, n).to(device)
    while True:
        sizes = bounds[1:] - bounds[:-1]
        split = sizes > leaf
        if not bool(split.any()):
            return order, bounds
        part = torch.repeat_interleave(torch.arange(len(sizes), device=device), sizes)
        x = points[order]
        index = part[:, None].expand(-1, dim)
        low = torch.full((len(sizes), dim), float("inf"), dtype=x.dtype, device=device)
        high = torch.full((len(sizes), dim), -float("inf"), dtype=x.dtype, device=device)
        low.scatter_reduce_(0, index, x, reduce="amin")
        high.scatter_reduce_(0, index, x, reduce="amax")
        axis = torch.argmax(high - low, dim=1)
        key = x.gather(1, axis[part][:, None]).reshape(-1)
        within = torch.argsort(key, stable=True)
        within = within[torch.argsort(part[within], stable=True)]
        order = order[within]
        middles = bounds[:-1][split] + sizes[split] // 2
        bounds = torch.sort(torch.cat([bounds, middles])).values


class _Neighbourhoods:
    """The points, grouped into small balls (k-d tree leaves) to find candidates fast.

    ``within(centres, radius)`` returns the indices of the points within ``radius`` of at least
    one centre: the balls that can reach a centre are selected first, and only their points
    are compared with the centres. With ``group`` (``(N,)`` int64, non-decreasing), ``within``
    takes the group of every centre and only a centre's own group counts; the balls and points
    of the groups outside the centres' range of groups are not even looked at, so a block of
    seeds costs what it would cost with its groups alone.
    """

    def __init__(self, points: torch.Tensor, leaf: int, group: torch.Tensor | None = None):
        device = points.device
        order, bounds = _kd_order(points, leaf, group)
        n_leaves = len(bounds) - 1
        self.points = points
        self.group = group
        self.leaf_group = group[order[bounds[:-1]]] if group is not None else None
        self.points_sq = (points * points).sum(1)
        leaf_in_order = torch.repeat_interleave(torch.arange(n_leaves, device=device), bounds[1:] - bounds[:-1])
        self.leaf_of_point = torch.empty_like(order).scatter_(0, order, leaf_in_order)
        count = (bounds[1:] - bounds[:-1]).to(points.dtype)
        sums = torch.zeros((n_leaves, points.shape[1]), dtype=points.dtype, device=device)
        sums.index_add_(0, self.leaf_of_point, points)
        self.centres = sums / count[:, None]
        self.centres_sq = (self.centres * self.centres).sum(1)
        spread = torch.linalg.vector_norm(points - self.centres[self.leaf_of_point], dim=1)
        self.radii = torch.zeros(n_leaves, dtype=points.dtype, device=device).scatter_reduce_(
            0, self.leaf_of_point, spread, reduce="amax")
        if group is not None:  # where every group's points and balls start (both come group by group)
            edges = torch.arange(int(group[-1]) + 2 if len(group) else 1, device=device)
            self.point_bounds, self.leaf_bounds = torch.stack(
                [torch.searchsorted(group, edges), torch.searchsorted(self.leaf_group, edges)]).tolist()

    def within(self, centres: torch.Tensor, radius: float, centre_group: torch.Tensor | None = None) -> torch.Tensor:
        p0, p1, l0, l1 = 0, len(self.points), 0, len(self.centres)
        mixed = False  # centres of several groups: the groups must be told apart
        if self.group is not None:  # only the points and balls of the centres' groups
            low, high = torch.stack([centre_group.min(), centre_group.max()]).tolist()
            p0, p1 = self.point_bounds[low], self.point_bounds[high + 1]
            l0, l1 = self.leaf_bounds[low], self.leaf_bounds[high + 1]
            mixed = low != high
        # squared distances to the balls' centres; the 1e-3 slack covers their float32 rounding
        d2 = torch.addmm(self.centres_sq[None, l0:l1], centres, self.centres[l0:l1].t(), beta=1.0, alpha=-2.0)
        reach = d2 <= ((radius + 1e-3 + self.radii[l0:l1]) ** 2)[None, :] - (centres * centres).sum(1)[:, None]
        if mixed:
            reach &= self.leaf_group[None, l0:l1] == centre_group[:, None]
        candidates = torch.nonzero(reach.any(0)[self.leaf_of_point[p0:p1] - l0]).reshape(-1) + p0
        near = self.points[candidates]
        # [x, 1, |x|^2] @ [-2c, |c|^2 - r^2, 1]^T = |x - c|^2 - r^2, candidates x centres
        left = torch.cat([near, torch.ones_like(near[:, :1]), self.points_sq[candidates][:, None]], dim=1)
        right = torch.cat([-2.0 * centres, ((centres * centres).sum(1) - radius * radius)[:, None],
                           torch.ones_like(centres[:, :1])], dim=1)
        excess = left @ right.t()
        if mixed:  # another group's centre never counts
            excess.masked_fill_(self.group[candidates][:, None] != centre_group[None, :], float("inf"))
        hit = excess.amin(1) <= 0
        return candidates[hit]
