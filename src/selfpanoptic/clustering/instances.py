"""The instance map of one image from its embeddings and semantic map (mean-shift+ per thing class).

Separate from :mod:`selfpanoptic.clustering.meanshift`, which clusters one set of points: this
module runs it class by class and numbers the instances of the image.
"""

from __future__ import annotations

import numpy as np
import torch

from ..classes import THING_TRAIN_IDS
from .meanshift import _device, _tensor, mean_shift, merge_close_clusters


def instances_from_embeddings(
    embeddings: np.ndarray | torch.Tensor,
    semantic: np.ndarray | torch.Tensor,
    thing_classes: tuple[int, ...] | list[int] = THING_TRAIN_IDS,
    bandwidth: float = 0.5,
    delta_d: float = 2.0,
    min_size: int = 20,
    min_bin_freq: int = 1,
    *,
    device=None,
) -> tuple[np.ndarray, dict[int, int]]:
    """Instance map of one image from its embeddings and semantic map ("mean-shift+").

    For each class of ``thing_classes`` present in ``semantic`` (in the order given), the
    embeddings of that class's pixels are clustered with
    :func:`~selfpanoptic.clustering.meanshift.mean_shift` (``bandwidth``, normally ``delta_v``),
    then :func:`~selfpanoptic.clustering.meanshift.merge_close_clusters` (``delta_d``); clusters
    with fewer than ``min_size`` pixels are dropped. Instances never cross classes and pixels of any other
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
        Passed to :func:`~selfpanoptic.clustering.meanshift.mean_shift`.
    device:
        Where to cluster; default: the device of a tensor ``embeddings``, else the CPU.

    Returns
    -------
    instances:
        ``(H, W)`` int32 numpy array (whatever the input and device), 0 = no instance, instances
        numbered ``1..K`` (class by class; within a class in the order
        :func:`~selfpanoptic.clustering.meanshift.merge_close_clusters` accepted them, the
        largest first).
    classes:
        ``{instance_id: trainId}`` for ``1..K``.
    """
    dev = _device(device, embeddings)
    emb = _tensor(embeddings, dev, torch.float32)
    sem = _tensor(semantic, dev, torch.int64)
    if emb.ndim != 3 or tuple(sem.shape) != tuple(emb.shape[1:]):
        raise ValueError(
            f"expected embeddings (D, H, W) and semantic (H, W), got {tuple(emb.shape)} and {tuple(sem.shape)}"
        )
    instances = torch.zeros(sem.numel(), dtype=torch.int32, device=dev)
    classes: dict[int, int] = {}
    flat = emb.reshape(emb.shape[0], -1)
    flat_sem = sem.reshape(-1)
    next_id = 1
    for class_id in thing_classes:
        where = torch.nonzero(flat_sem == class_id).reshape(-1)
        if len(where) == 0:
            continue
        points = flat[:, where].t()
        labels = merge_close_clusters(points, mean_shift(points, bandwidth, min_bin_freq), delta_d)
        sizes = torch.bincount(labels)
        keep = sizes >= min_size
        count = int(keep.sum())
        if count == 0:
            continue
        ids = torch.where(keep, torch.cumsum(keep, 0) - 1 + next_id, 0).to(torch.int32)
        instances[where] = ids[labels]
        for instance_id in range(next_id, next_id + count):
            classes[instance_id] = int(class_id)
        next_id += count
    return instances.reshape(sem.shape).cpu().numpy(), classes
