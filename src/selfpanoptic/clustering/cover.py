"""Greedy covers: accept points in order unless within a radius of an already accepted one.

Both post-processing steps of mean-shift+ are such a cover: the deduplication of the modes
(radius ``bandwidth``, strongest mode first) and the merge of close clusters (radius
``delta_d``, largest cluster first), see :mod:`selfpanoptic.clustering.meanshift`. Private; apart
from that module only to keep it readable.
"""

from __future__ import annotations

import torch


def _greedy_cover(points: torch.Tensor, radius: float,
                  group: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Accept points in order unless within ``radius`` (inclusive) of an accepted one.

    Returns the indices of the accepted points ``(K,)`` (in order) and, for every point, the
    number ``0..K-1`` of the first accepted point within ``radius`` of it (itself if accepted).
    With ``group`` (``(N,)`` int64, any order), points of different groups never cover each
    other: each group is covered as if alone (:func:`_greedy_cover_groups`).

    The loop runs once per *accepted* point: accepting ``j`` settles every later undecided point
    within reach of ``j`` (an earlier accepted point would have settled it already).
    """
    n = points.shape[0]
    device = points.device
    if group is not None and n and bool(group.ne(group[0]).any()):
        return _greedy_cover_groups(points, radius, group)
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


GROUP_COVER_CHECK = 1
"""Steps of :func:`_greedy_cover_groups` between two looks of the host, on the CPU: every step,
to drop the decided points at once (a look costs nothing there)."""

GROUP_COVER_CHECK_CUDA = 4
"""Steps of :func:`_greedy_cover_groups` between two looks of the host on a GPU, where each look
is a synchronisation; a step after the last decision changes nothing."""


def _greedy_cover_groups(points: torch.Tensor, radius: float, group: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`_greedy_cover` of several groups side by side, same results as one call per group.

    Each step accepts the first undecided point ``j`` of every group, which settles every later
    undecided point of its group within reach of ``j``; the steps are as many as the points
    accepted in the busiest group, not in all groups. A step costs about twice a step of the
    one-group loop, hence two loops. The decided points are dropped at every look of the host.
    """
    n = points.shape[0]
    device = points.device
    steps = GROUP_COVER_CHECK if device.type == "cpu" else GROUP_COVER_CHECK_CUDA
    first = torch.empty(int(group.max()) + 1, dtype=torch.int64, device=device)
    owner = torch.full((n,), -1, dtype=torch.int64, device=device)
    accepted = torch.zeros(n, dtype=torch.bool, device=device)
    live = torch.arange(n, device=device)  # the undecided points, in order
    while live.numel():
        live_group, live_points = group[live], points[live]
        undecided = torch.ones(len(live), dtype=torch.bool, device=device)
        for _ in range(steps):
            first.fill_(n).scatter_reduce_(0, live_group, torch.where(undecided, live, n), reduce="amin")
            j = first[live_group]  # the point its group accepts now (n: none left), for every point
            now = live == j
            close = torch.linalg.vector_norm(live_points - points[j.clamp(max=n - 1)], dim=1) <= radius
            close &= undecided
            close |= now
            owner.index_put_((live,), torch.where(close, j, owner[live]))
            accepted.index_put_((live,), accepted[live] | now)
            undecided &= ~close
        live = live[undecided]
    rank = torch.cumsum(accepted, 0) - 1
    return torch.nonzero(accepted).reshape(-1), rank[owner]
