"""Inference of trained models over a dataset cache, batch by batch: semantic labels and instances.

Both the prediction stages and the pseudo-instance stage run the same loop; what differs is only
how embeddings become instances (``cluster``), so the loop lives here once. The model's output
comes from :func:`selfpanoptic.dense.dense_predict` (:class:`~selfpanoptic.settings.InferenceSettings`:
whole or sliding window, scales, flip) at a requested output size; without settings and size it is
one forward pass at the images' resolution.
"""

from __future__ import annotations

from functools import partial
from typing import Callable, Iterator

import numpy as np
import torch

from .augment.normalise import normalise
from .dense import dense_predict
from .settings import InferenceSettings

Cluster = Callable[[torch.Tensor, np.ndarray, np.ndarray, list[int]], list[tuple[np.ndarray, dict[int, int]]]]
"""``cluster(embeddings (B, D, H, W), semantic (B, H, W), confidence (B, H, W), thing trainIds)`` ->
one ``(instances (H, W) int numbered 1..K, {instance id: trainId})`` per image. A whole batch per
call, so that the clustering runs once per batch and class group, not once per image
(:func:`selfpanoptic.clustering.instances_from_embeddings_batch`)."""


def batches(count: int, size: int) -> Iterator[range]:
    """Consecutive index ranges of at most ``size`` covering ``0..count-1``."""
    for start in range(0, count, size):
        yield range(start, min(start + size, count))


@torch.no_grad()
def predict_semantic_batch(
    model: torch.nn.Module, images: np.ndarray, device: torch.device,
    settings: InferenceSettings | None = None, size: tuple[int, int] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Labels uint8 (argmax trainIds) and confidence float16 (softmax maximum), both
    ``(B, H_out, W_out)``, of uint8 RGB images ``(B, H, W, 3)``.

    ``settings``: the inference passes (None: one whole pass); ``size``:
    ``(H_out, W_out)``, default ``(H, W)``. The softmax probabilities are averaged over the
    passes and upsampled bilinearly to ``size`` before the argmax.
    """
    prob = dense_predict(model, normalise(images).to(device), settings, size, partial(torch.softmax, dim=1))
    conf, pred = prob.max(dim=1)
    return pred.cpu().numpy().astype(np.uint8), conf.cpu().numpy().astype(np.float16)


@torch.no_grad()
def image_instances(
    groups: list[tuple[torch.nn.Module, list[int]]], images: np.ndarray, semantic: np.ndarray,
    confidence: np.ndarray, cluster: Cluster, device: torch.device,
    settings: InferenceSettings | None = None, size: tuple[int, int] | None = None,
) -> Iterator[tuple[np.ndarray, list[tuple[int, int, int]], list[float]]]:
    """Instances of each image of a batch, every class group's instances merged into one map.

    ``groups``: ``(embedding model, its thing trainIds)``; ``images`` ``(B, H, W, 3)`` uint8;
    ``semantic`` ``(B, H_out, W_out)`` trainIds and ``confidence`` ``(B, H_out, W_out)`` float of
    the same images at the output size ``size`` (default ``(H, W)``). The embeddings are
    averaged over the passes of ``settings`` (None: one whole pass) and upsampled bilinearly to
    ``size`` before clustering. Yields per image ``(instances (H_out, W_out) int32 numbered 1..K, [(id, trainId, area)], [score])``, the
    score of an instance being its mean semantic confidence.
    """
    x = normalise(images).to(device)
    confidence = np.asarray(confidence, dtype=np.float32)
    out_size = tuple(x.shape[-2:]) if size is None else tuple(size)
    if tuple(semantic.shape[1:]) != out_size:  # the clustering would mask embeddings of another size
        raise ValueError(f"semantic maps of {tuple(semantic.shape[1:])} pixels for an output size of {out_size}")
    # embeddings stay on the device: mean-shift runs there too (GPU clustering), the whole batch at once
    found = [cluster(dense_predict(model, x, settings, size), semantic, confidence, classes) for model, classes in groups]
    for b in range(len(images)):
        conf = confidence[b]
        merged = np.zeros(semantic.shape[1:], dtype=np.int32)
        rows, scores = [], []
        for group_found in found:
            inst, inst_classes = group_found[b]
            for k in sorted(inst_classes):
                mask = inst == k
                merged[mask] = len(rows) + 1
                rows.append((len(rows) + 1, inst_classes[k], int(mask.sum())))
                scores.append(float(conf[mask].mean()))
        yield merged, rows, scores

