"""Inference of trained models over a dataset cache, batch by batch: semantic labels and instances.

Both the prediction stages and the pseudo-instance stage run the same loop; what differs is only
how embeddings become instances (``cluster``), so the loop lives here once.
"""

from __future__ import annotations

from typing import Callable, Iterator

import numpy as np
import torch

from .augment.normalise import normalise

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
def predict_semantic_batch(model: torch.nn.Module, images: np.ndarray, device: torch.device,
                           size: tuple[int, int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Labels ``(B, H', W')`` uint8 (argmax trainIds) and confidence ``(B, H', W')`` float16 (softmax
    maximum) of uint8 RGB images ``(B, H, W, 3)``; ``(H', W') = size``, default ``(H, W)``."""
    prob = torch.softmax(model(normalise(images).to(device)).float(), dim=1)
    if size is not None and tuple(size) != prob.shape[2:]:
        prob = torch.nn.functional.interpolate(prob, size=tuple(size), mode="bilinear", align_corners=False)
    conf, pred = prob.max(dim=1)
    return pred.cpu().numpy().astype(np.uint8), conf.cpu().numpy().astype(np.float16)


@torch.no_grad()
def image_instances(
    groups: list[tuple[torch.nn.Module, list[int]]], images: np.ndarray, semantic: np.ndarray,
    confidence: np.ndarray, cluster: Cluster, device: torch.device,
) -> Iterator[tuple[np.ndarray, list[tuple[int, int, int]], list[float]]]:
    """Instances of each image of a batch, every class group's instances merged into one map.

    ``groups``: ``(embedding model, its thing trainIds)``; ``images`` ``(B, H, W, 3)`` uint8;
    ``semantic`` ``(B, H, W)`` trainIds and ``confidence`` ``(B, H, W)`` float of the same images.
    Yields per image ``(instances (H, W) int32 numbered 1..K, [(id, trainId, area)], [score])``,
    the score of an instance being its mean semantic confidence.
    """
    x = normalise(images).to(device)
    confidence = np.asarray(confidence, dtype=np.float32)

    def embed(model):
        out = model(x).float()
        if out.shape[2:] != semantic.shape[1:]:  # semantic maps at a finer resolution: upsample first
            out = torch.nn.functional.interpolate(out, size=semantic.shape[1:], mode="bilinear", align_corners=False)
        return out

    # embeddings stay on the device: mean-shift runs there too (GPU clustering), the whole batch at once
    found = [cluster(embed(model), semantic, confidence, classes) for model, classes in groups]
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

