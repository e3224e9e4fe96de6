"""Training batches from a dataset cache: random crops, flips, optional colour jitter.

:func:`sample_crops` is the one sampler every training step uses (choose images, crop and flip
each image's arrays alike, jitter the image, stack); :func:`sample_batch` is it on a labelled
cache. Every draw takes a numpy Generator, so a step's batch is a function of (seed, step).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, NamedTuple

import numpy as np
import torch

from ..augment.crops import random_crop_flip
from ..augment.normalise import normalise
from ..augment.photometric import colour_jitter
from ..intermediates import DatasetCache


@dataclass(frozen=True)
class TranslatedImages:
    """The source rendered in the target's look (the same images, in the same order, as the source
    cache) and the share of source draws that take the translated image instead of the original."""

    cache: DatasetCache
    share: float


@dataclass(frozen=True)
class SampledPairs:
    """Labelled pairs of another dataset at the same working size (a generator's samples: images
    and label maps, no instances) and the share of draws that take one of them, chosen uniformly,
    in place of the drawn image, its labels and its instances."""

    cache: DatasetCache
    share: float


class Batch(NamedTuple):
    """A training batch: images (B, 3, h, w) float32 normalised, labels (B, h, w) int64 (255 =
    ignore), instances (B, h, w) int64 (0 = none), inverse_depth (B, h, w) float32 in 1/m with NaN
    for unknown (only when asked for; None otherwise)."""

    images: torch.Tensor
    labels: torch.Tensor
    instances: torch.Tensor
    inverse_depth: torch.Tensor | None = None


def rare_class_probabilities(class_pixels: np.ndarray, temperature: float) -> np.ndarray:
    """Rare-class sampling (DAFormer's RCS): the probability ``(N,)`` of drawing each image.

    ``class_pixels``: ``(N, C)`` pixel count of each class in each image. A class is drawn with
    probability ``softmax((1 - f_c) / temperature)`` over the classes present anywhere, ``f_c``
    its pixel share over all images; then one of the ``n_c`` images containing it uniformly, so
    image i has ``sum over its classes c of P(c) / n_c``. Small temperatures favour rare classes
    strongly; a large one approaches drawing a class uniformly.
    """
    class_pixels = np.asarray(class_pixels, dtype=np.float64)
    if class_pixels.ndim != 2 or temperature <= 0:
        raise ValueError(f"class_pixels must be (N, C) and temperature > 0, got {class_pixels.shape} and {temperature}")
    present = class_pixels > 0
    images_with = present.sum(axis=0)
    seen = images_with > 0
    if not seen.any():
        return np.full(len(class_pixels), 1.0 / len(class_pixels))
    share = class_pixels.sum(axis=0) / class_pixels.sum()
    logits = np.where(seen, (1.0 - share) / temperature, -np.inf)
    p_class = np.exp(logits - logits[seen].max())
    p_class /= p_class.sum()
    per_image = (present * np.where(seen, p_class / np.maximum(images_with, 1), 0.0)).sum(axis=1)
    return per_image / per_image.sum()


def choose_images(rng: np.random.Generator, population: np.ndarray, size: int,
                  probabilities: np.ndarray | None = None) -> np.ndarray:
    """``size`` indices drawn from ``population`` ``(N,)``: uniformly, without replacement when it
    holds at least ``size``; with ``probabilities`` ``(N,)`` (summing to 1), with replacement.

    One ``rng.choice`` call either way, so callers draw exactly what they drew before sharing it.
    """
    if probabilities is None:
        return rng.choice(population, size=size, replace=len(population) < size)
    return rng.choice(population, size=size, p=probabilities)


def sample_crops(
    rng: np.random.Generator, population: np.ndarray, size: int, read: Callable[[int], list[np.ndarray]],
    crop: tuple[int, int], hflip: bool, jitter: float = 0.0, probabilities: np.ndarray | None = None,
    shuffle: bool = True,
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Random crops of ``size`` images drawn from ``population``, stacked: the one batch sampler.

    Parameters
    ----------
    rng
        Every draw comes from it, in this order: the indices (:func:`choose_images`; none when
        ``shuffle`` is False), then per image whatever ``read`` draws, the crop and flip
        (:func:`~selfpanoptic.augment.crops.random_crop_flip`) and the colour jitter.
    population
        ``(N,)`` indices to draw from; with ``shuffle=False`` exactly these, in order.
    size
        Images to draw (ignored with ``shuffle=False``).
    read
        ``read(i) -> [array, ...]``: image i's arrays, ``(H, W)`` or ``(H, W, C)``, the first the
        uint8 ``(H, W, 3)`` image; all are cropped by the same window and flipped alike.
    crop
        ``(height, width)`` pixels of the window, clipped to the image.
    hflip
        Flip each crop left-right with probability 0.5.
    jitter
        Colour jitter strength of the image (:func:`~selfpanoptic.augment.photometric.colour_jitter`;
        0 = off, no draws).
    probabilities
        ``(N,)`` chance of drawing each entry of ``population`` (with replacement), or None.
    shuffle
        Draw the indices (True) or take ``population`` as they are (False).

    Returns
    -------
    chosen : numpy.ndarray
        ``(B,)`` the indices read, in batch order.
    stacks : list of numpy.ndarray
        One ``(B, h, w[, C])`` stack per array ``read`` returns, in its order, dtypes kept.
    """
    chosen = choose_images(rng, population, size, probabilities) if shuffle else population
    rows = []
    for i in chosen:
        image, *rest = random_crop_flip(rng, read(i), crop, hflip)
        rows.append([colour_jitter(rng, image, jitter), *rest])
    return chosen, [np.stack(column) for column in zip(*rows)]


def sample_batch(
    cache: DatasetCache, rng: np.random.Generator, indices: np.ndarray, batch_size: int,
    crop: tuple[int, int], hflip: bool = True, jitter: float = 0.0, shuffle: bool = True, depth: bool = False,
    translated: TranslatedImages | None = None, sampled: SampledPairs | None = None,
) -> Batch:
    """A random :class:`Batch` from ``indices`` of ``cache`` (``shuffle=False``: exactly ``indices``, in order).

    ``depth``: also crop the cache's inverse depth (all NaN when the cache has none). The random
    draws do not depend on ``depth``, so asking for it leaves the rest of the batch unchanged.
    ``translated``: each image is the translated one with probability ``translated.share`` (one
    extra draw per image, made only when given; labels and instances are the cache's).
    ``sampled``: each image is, with probability ``sampled.share``, a random pair of
    ``sampled.cache`` instead, with its labels and instances (one or two extra draws per image,
    made only when given; a sampled image is never also translated).
    """
    def read(i: int) -> list[np.ndarray]:
        if sampled is not None and rng.random() < sampled.share:
            j = int(rng.integers(len(sampled.cache)))
            arrays = [sampled.cache.read(key, j) for key in ("images", "labels", "instances")]
            return arrays + [sampled.cache.read_inverse_depth(j)] if depth else arrays
        image = cache.read("images", i)
        if translated is not None and rng.random() < translated.share:
            image = translated.cache.read("images", i)
        arrays = [image, cache.read("labels", i), cache.read("instances", i)]
        return arrays + [cache.read_inverse_depth(i)] if depth else arrays

    _, (images, labels, instances, *depths) = sample_crops(rng, indices, batch_size, read, crop, hflip, jitter,
                                                           shuffle=shuffle)
    return Batch(
        normalise(images),
        torch.from_numpy(labels.astype(np.int64)),
        torch.from_numpy(instances.astype(np.int64)),
        torch.from_numpy(depths[0].astype(np.float32)) if depth else None,
    )
