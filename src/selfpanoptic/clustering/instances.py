"""Instance maps from embeddings and semantic maps: mean-shift+ inside every thing class.

Separate from :mod:`selfpanoptic.clustering.meanshift`, which clusters sets of points: this
module picks the pixels of every (image, thing class) *group* of a batch and numbers the
instances of every image. :func:`instances_from_embeddings_batch` clusters all groups of a
batch in one go; :func:`instances_from_embeddings` is the same for one image.

Why one go: clustering an image class by class meant, per group, a few dozen small kernels and
host synchronisations (binning, the seed blocks, the mode deduplication, the label assignment,
the merge), whatever the number of pixels. The groups of a batch now share every step: they are
kept apart by their group index (a point only ever sees points, seeds and modes of its own
group), not by separate calls, so each group is clustered as if alone.
"""

from __future__ import annotations

import numpy as np
import torch

from ..classes import THING_TRAIN_IDS
from .meanshift import _counts, _decision_dtype, _device, _full_float32_matmul, _mean_shift, _merge, _tensor


def instances_from_embeddings_batch(
    embeddings: np.ndarray | torch.Tensor,
    semantic: np.ndarray | torch.Tensor,
    thing_classes: tuple[int, ...] | list[int] = THING_TRAIN_IDS,
    bandwidth: float = 0.5,
    delta_d: float = 2.0,
    min_size: int = 20,
    min_bin_freq: int = 1,
    max_iter: int = 300,
    *,
    device=None,
) -> list[tuple[np.ndarray, dict[int, int]]]:
    """Instance maps of a batch of images from their embeddings and semantic maps ("mean-shift+").

    For every image and every class of ``thing_classes`` present in it, the embeddings of that
    class's pixels are clustered with :func:`~selfpanoptic.clustering.meanshift.mean_shift`
    (``bandwidth``, normally ``delta_v``), then
    :func:`~selfpanoptic.clustering.meanshift.merge_close_clusters` (``delta_d``); clusters with
    fewer than ``min_size`` pixels are dropped. Every (image, class) group is clustered as if
    alone, but all groups together: instances never cross classes or images, and pixels of any
    other class (stuff, ignore) stay 0.

    Parameters
    ----------
    embeddings:
        ``(B, D, H, W)`` float embeddings (numpy or torch, any device; read as float32),
        embedding units.
    semantic:
        ``(B, H, W)`` trainIds (uint8 or any integer type, numpy or torch), e.g. the semantic
        pseudo-labels.
    thing_classes:
        trainIds to split into instances, in numbering order (repeats are ignored).
    bandwidth, delta_d:
        Mean-shift radius and merge distance, embedding units.
    min_size:
        Smallest instance kept, in pixels.
    min_bin_freq, max_iter:
        Passed to :func:`~selfpanoptic.clustering.meanshift.mean_shift`.
    device:
        Where to cluster; default: the device of a tensor ``embeddings``, else the CPU.

    Returns
    -------
    One ``(instances, classes)`` per image:

    instances:
        ``(H, W)`` int32 numpy array (whatever the input and device), 0 = no instance, instances
        numbered ``1..K`` (class by class in the order of ``thing_classes``; within a class in
        the order :func:`~selfpanoptic.clustering.meanshift.merge_close_clusters` accepted
        them, the largest first).
    classes:
        ``{instance_id: trainId}`` for ``1..K``.
    """
    dev = _device(device, embeddings)
    emb = _tensor(embeddings, dev, torch.float32)
    sem = _tensor(semantic, dev, torch.int64)
    if emb.ndim != 4 or sem.ndim != 3 or tuple(sem.shape) != (emb.shape[0], *emb.shape[2:]):
        raise ValueError(
            f"expected embeddings (B, D, H, W) and semantic (B, H, W), got {tuple(emb.shape)} and {tuple(sem.shape)}"
        )
    if not bandwidth > 0:
        raise ValueError(f"bandwidth must be > 0, got {bandwidth}")
    batch, dim = emb.shape[:2]
    classes = list(dict.fromkeys(int(c) for c in thing_classes))
    pixel_group, pixels = _pixel_groups(sem, classes)
    instances = torch.zeros(pixel_group.shape, dtype=torch.int32, device=dev)
    found: list[dict[int, int]] = [{} for _ in range(batch)]
    if pixels.numel():
        group = pixel_group[pixels]
        points = emb.permute(0, 2, 3, 1).reshape(-1, dim)[pixels]
        if not bool(torch.isfinite(points).all()):
            raise ValueError("embeddings contain NaN or infinite values")
        with _full_float32_matmul():
            labels, mode_group = _mean_shift(points, float(bandwidth), min_bin_freq, max_iter, group)
        merged, cluster_group = _merge(points.to(_decision_dtype(dev)), labels, delta_d, mode_group)
        ids, kept = _number(merged, cluster_group, min_size, batch, len(classes))
        instances[pixels] = ids[merged]
        for b, k, position_k in kept:
            found[b][k] = classes[position_k]
    host = instances.reshape(sem.shape).cpu().numpy()
    return [(host[b], found[b]) for b in range(batch)]


def _pixel_groups(sem: torch.Tensor, classes: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """The (image, thing class) group of every pixel, and the grouped pixels in clustering order.

    ``sem``: ``(B, H, W)`` int64 trainIds; ``classes``: distinct thing trainIds. Returns
    ``pixel_group`` ``(B*H*W,)`` int64, ``image * len(classes) + position of the pixel's class in
    classes`` (-1: not a thing), and ``pixels`` ``(N,)`` int64 flat indices of the thing pixels,
    group by group, raster order within a group (the order of a per-class ``torch.nonzero``).
    """
    position = torch.full_like(sem, -1)
    for i, class_id in enumerate(classes):
        position.masked_fill_(sem == class_id, i)  # no host synchronisation, unlike position[mask] = i
    image = torch.arange(sem.shape[0], device=sem.device)[:, None, None]
    pixel_group = torch.where(position >= 0, image * len(classes) + position, -1).reshape(-1)
    pixels = torch.nonzero(pixel_group >= 0).reshape(-1)
    return pixel_group, pixels[torch.argsort(pixel_group[pixels], stable=True)]


def _number(merged: torch.Tensor, cluster_group: torch.Tensor, min_size: int, batch: int,
            n_classes: int) -> tuple[torch.Tensor, list[tuple[int, int, int]]]:
    """Instance ids of the merged clusters, and ``(image, id, class position)`` of the kept ones.

    ``merged``: ``(N,)`` cluster of every point, clusters numbered in acceptance order (all groups
    together); ``cluster_group``: ``(C,)`` group of every cluster (``image * n_classes +
    class position``). Clusters under ``min_size`` points get id 0; the others are numbered
    ``1..K`` per image, by group (class order), then acceptance order. One host synchronisation.
    """
    count = len(cluster_group)
    device = merged.device
    kept = _counts(merged, count) >= min_size
    order = torch.argsort(cluster_group * count + torch.arange(count, device=device))  # by group, then acceptance
    kept, image = kept[order], cluster_group[order] // n_classes
    running = torch.cumsum(kept, 0)  # kept clusters up to here, all images
    per_image = torch.zeros(batch, dtype=torch.int64, device=device).index_add_(0, image, kept.to(torch.int64))
    before = torch.cumsum(per_image, 0) - per_image  # kept clusters of the images before
    ids = torch.zeros(count, dtype=torch.int32, device=device)
    ids[order] = torch.where(kept, running - before[image], 0).to(torch.int32)
    rows = torch.stack([kept.to(torch.int64), image, ids[order].to(torch.int64), cluster_group[order] % n_classes],
                       dim=1)
    return ids, [tuple(row[1:]) for row in rows.tolist() if row[0]]


def instances_from_embeddings(
    embeddings: np.ndarray | torch.Tensor,
    semantic: np.ndarray | torch.Tensor,
    *args,
    device=None,
    **options,
) -> tuple[np.ndarray, dict[int, int]]:
    """Instance map of one image: :func:`instances_from_embeddings_batch` of a batch of one.

    ``embeddings``: ``(D, H, W)`` float (numpy or torch, any device); ``semantic``: ``(H, W)``
    trainIds. ``args`` and ``options`` are the further arguments of
    :func:`instances_from_embeddings_batch` (``thing_classes``, ``bandwidth``, ``delta_d``,
    ``min_size``, ``min_bin_freq``, ``max_iter``), with its defaults; ``device`` and the result
    (``(H, W)`` int32 numpy instances numbered ``1..K``, ``{instance_id: trainId}``) as for one
    image there.
    """
    dev = _device(device, embeddings)
    emb = _tensor(embeddings, dev, torch.float32)
    sem = _tensor(semantic, dev, torch.int64)
    if emb.ndim != 3 or tuple(sem.shape) != tuple(emb.shape[1:]):
        raise ValueError(
            f"expected embeddings (D, H, W) and semantic (H, W), got {tuple(emb.shape)} and {tuple(sem.shape)}"
        )
    return instances_from_embeddings_batch(emb[None], sem[None], *args, device=dev, **options)[0]
