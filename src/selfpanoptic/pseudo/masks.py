"""Pseudo instance masks for instance self-training, and which of them to trust.

:func:`pseudo_instances_batch` clusters a network's embeddings inside the semantic mask of each
thing class of every image of a batch
(:func:`~selfpanoptic.clustering.instances_from_embeddings_batch`: mean-shift with bandwidth
``delta_v``, merge within ``delta_d``) and keeps only the stable masks: at least ``min_size``
pixels, and a mean semantic confidence of at least ``min_confidence``. :func:`pseudo_instances`
is the same for one image.

Why these two: on the toy target, the source model's clusters over-split objects; graded against
ground truth, true positives were large (mean 925 px against 135 px for false positives) and
confidently segmented (precision 8 % for all masks, 44 % at mean confidence >= 0.8). Training on
the fragments teaches the network to split further. Embedding compactness (share of pixels within
``delta_v`` of the mean) looked natural but ran the wrong way there: true objects were the
*diffuse* clusters.
"""

from __future__ import annotations

import numpy as np
import torch

from ..clustering import instances_from_embeddings_batch
from .objectness import Objectness, class_log_areas, fit_logistic, objectness_examples


def mean_per_instance(values: np.ndarray, instances: np.ndarray) -> dict[int, float]:
    """Mean of ``values`` ``(H, W)`` over each instance of ``instances`` ``(H, W)`` (0 = none): ``{id: mean}``."""
    mask = instances > 0
    ids, inverse = np.unique(instances[mask], return_inverse=True)
    sums = np.bincount(inverse.ravel(), weights=values[mask].astype(np.float64), minlength=len(ids))
    counts = np.bincount(inverse.ravel(), minlength=len(ids))
    return {int(k): float(s / c) for k, s, c in zip(ids, sums, counts)}


def pseudo_instances_batch(
    embeddings: torch.Tensor,
    semantic: np.ndarray | torch.Tensor,
    confidence: np.ndarray | torch.Tensor,
    thing_classes: list[int],
    delta_v: float,
    delta_d: float,
    min_size: int,
    min_confidence: float,
    device=None,
    objectness: Objectness | None = None,
    min_objectness: float = 0.5,
) -> list[tuple[np.ndarray, dict[int, int]]]:
    """Pseudo instance masks of a batch of images, all clustered in one go.

    Parameters
    ----------
    embeddings:
        ``(B, D, H, W)`` float tensor on any device (a numpy array works too), embedding units.
    semantic:
        ``(B, H, W)`` trainIds (numpy or torch), the semantic pseudo-labels.
    confidence:
        ``(B, H, W)`` semantic softmax maximum in ``[0, 1]`` (numpy or torch, any float type).
    thing_classes:
        trainIds to split into instances, in numbering order.
    delta_v, delta_d:
        Mean-shift bandwidth and merge distance, embedding units.
    min_size:
        Smallest mask kept, in pixels.
    min_confidence:
        Smallest mean ``confidence`` over a mask for it to be kept.
    device:
        Where to cluster; default: the device of a tensor ``embeddings``, else the CPU.
    objectness, min_objectness:
        Optional objectness classifier (:func:`fit_objectness`): a mask is kept only when its
        probability of being a whole object is at least ``min_objectness``.

    Returns
    -------
    One ``(instances, classes)`` per image: ``(H, W)`` int32 numpy instances numbered ``1..K``
    (0: none; class by class in the order of ``thing_classes``, within a class the largest
    first) and ``{instance id: trainId}``. The result for an image does not depend on the other
    images of the batch.
    """
    found = instances_from_embeddings_batch(
        embeddings, semantic, thing_classes=thing_classes, bandwidth=delta_v, delta_d=delta_d,
        min_size=min_size, device=device,
    )
    if not any(classes for _, classes in found):
        return found
    if isinstance(confidence, torch.Tensor):
        confidence = confidence.detach().cpu().numpy()
    conf = np.asarray(confidence, dtype=np.float32).reshape(len(found), -1)
    counts, shift, numbered = _number_across_batch(found)
    total = int(counts.sum()) + 1
    # float64 sums in pixel order, as mean_per_instance makes them
    sums = np.bincount(numbered, weights=conf.ravel().astype(np.float64), minlength=total)
    sizes = np.bincount(numbered, minlength=total)
    kept = sums[1:] / np.maximum(sizes[1:], 1) >= min_confidence  # per instance of the batch
    if objectness is not None:
        scores = np.concatenate([objectness.scores(inst, classes) for inst, classes in found])
        kept &= scores >= min_objectness
    return _keep_instances(found, kept, counts, shift, numbered)


def _number_across_batch(found: list[tuple[np.ndarray, dict[int, int]]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One number for every instance of the batch: image b's ids shifted by the counts before it.

    ``found``: per image, ``(H, W)`` instances numbered ``1..K_b`` and their classes. Returns
    ``counts`` ``(B,)`` int64 (``K_b``), ``shift`` ``(B,)`` int64 (instances of the images before)
    and ``numbered`` ``(B*H*W,)`` int64 (0: none, else ``shift[b] + id``).
    """
    counts = np.array([len(classes) for _, classes in found], dtype=np.int64)
    shift = np.cumsum(counts) - counts
    instances = np.stack([inst.reshape(-1) for inst, _ in found]).astype(np.int64)
    numbered = np.where(instances > 0, instances + shift[:, None], 0).ravel()
    return counts, shift, numbered


def _keep_instances(found: list[tuple[np.ndarray, dict[int, int]]], kept: np.ndarray, counts: np.ndarray,
                    shift: np.ndarray, numbered: np.ndarray) -> list[tuple[np.ndarray, dict[int, int]]]:
    """``found`` with only the ``kept`` instances (``(sum K_b,)`` bool, batch numbering), renumbered.

    Kept ids become ``1..K`` per image in increasing order, dropped ids 0; ``counts``, ``shift``,
    ``numbered`` as :func:`_number_across_batch` returns them. Instances: ``(H, W)`` int32.
    """
    image = np.repeat(np.arange(len(found)), counts)
    before = np.concatenate([[0], np.cumsum(kept)])[shift]  # kept instances of the images before
    new_id = np.zeros(int(counts.sum()) + 1, dtype=np.int32)
    new_id[1:] = np.where(kept, np.cumsum(kept) - before[image], 0)
    relabelled = new_id[numbered].reshape(len(found), *found[0][0].shape)
    results = []
    for b, (_, classes) in enumerate(found):
        old_ids = [k for k in sorted(classes) if kept[shift[b] + k - 1]]
        results.append((relabelled[b], {new: classes[old] for new, old in enumerate(old_ids, start=1)}))
    return results


def pseudo_instances(
    embeddings: torch.Tensor,
    semantic: np.ndarray,
    confidence: np.ndarray,
    thing_classes: list[int],
    delta_v: float,
    delta_d: float,
    min_size: int,
    min_confidence: float,
    **options,
) -> tuple[np.ndarray, dict[int, int]]:
    """Pseudo instance masks of one image: :func:`pseudo_instances_batch` of a batch of one.

    ``embeddings``: ``(D, H, W)``; ``semantic``: ``(H, W)`` trainIds; ``confidence``: ``(H, W)``
    semantic softmax maximum. The other arguments, and ``options`` (``device``, ``objectness``,
    ``min_objectness``, with their defaults there), are those of :func:`pseudo_instances_batch`.
    Returns ``(instances (H, W) int32 numbered 1..K, {instance id: trainId})``.
    """
    return pseudo_instances_batch(embeddings[None], semantic[None], confidence[None], thing_classes, delta_v,
                                  delta_d, min_size, min_confidence, **options)[0]


def fit_objectness(
    model: torch.nn.Module, source, thing_classes: list[int], delta_v: float, delta_d: float, min_size: int,
    images: int, l2: float, device, batch_size: int = 8,
) -> tuple[Objectness, dict]:
    """Fit the objectness classifier of an instance model on labelled source images.

    ``model``: the instance network that will make the pseudo instances (eval mode, on
    ``device``); ``source``: a :class:`~selfpanoptic.intermediates.DatasetCache` with labels and
    instances; ``thing_classes``: the group's trainIds. The first ``images`` source images (cache
    order) with a ground-truth instance of the group are clustered inside their labelled masks of
    each class as the target is (``delta_v``, ``delta_d``, ``min_size``); clusters matching a
    ground-truth instance are objects, the rest fragments
    (:func:`~selfpanoptic.pseudo.objectness.objectness_examples`). Returns the classifier and a
    summary: examples, objects, the training accuracy and the weights.
    """
    from ..augment.normalise import normalise
    from ..segments import instance_majority_classes

    chosen, truths = [], []
    for i in range(len(source)):
        labels, instances = source.read("labels", i), source.read("instances", i)
        ids, classes = instance_majority_classes(labels, instances)
        mine = np.isin(classes, thing_classes)
        if mine.any():
            chosen.append(i)
            truths.append((np.where(np.isin(instances, ids[mine]), instances, 0),
                           {int(k): int(c) for k, c in zip(ids[mine], classes[mine])}))
        if len(chosen) == images:
            break
    class_log_area = class_log_areas([t for t, _ in truths], [c for _, c in truths])
    clusters = []
    with torch.no_grad():
        for start in range(0, len(chosen), batch_size):
            part = chosen[start:start + batch_size]
            batch = normalise(np.stack([source.read("images", i) for i in part])).to(device)
            labels = np.stack([source.read("labels", i) for i in part])
            clusters += instances_from_embeddings_batch(model(batch).float(), labels, thing_classes=thing_classes,
                                                        bandwidth=delta_v, delta_d=delta_d, min_size=min_size,
                                                        device=device)
    x, y = objectness_examples(clusters, truths, class_log_area)
    if len(y) == 0:
        raise ValueError("no source clusters of the group to fit the objectness classifier on")
    objectness = Objectness(fit_logistic(x, y, l2), class_log_area)
    predicted = objectness.probability(x) >= 0.5
    summary = {"images": len(chosen), "examples": int(len(y)), "objects": int(y.sum()),
               "accuracy": float((predicted == y).mean()), "weights": objectness.describe()}
    return objectness, summary
