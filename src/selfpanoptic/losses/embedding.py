"""Losses of the SPOCO-style instance branch: per-pixel embeddings clustered into instances.

The instance head maps every pixel to a point in a D-dimensional embedding space (D = 8 by
default). Training pulls the pixels of one instance together and pushes different instances
apart, so that at inference a clustering of the embeddings recovers the instances
(:mod:`selfpanoptic.clustering`).

Conventions shared by every function here:

* ``embeddings`` are float tensors of shape ``(B, D, H, W)`` (or ``(D, H, W)`` for one image);
  distances between them are Euclidean, in embedding units.
* ``instances`` are int64 tensors of shape ``(B, H, W)`` holding an instance id per pixel;
  every id ``> 0`` is an instance, ``0`` (and any negative value) marks pixels that belong to
  no instance (background, stuff, ignore). Such pixels take no part in the instance terms.
  Ids only need to be unique within one image.
* ``mu_k`` is the mean embedding of the pixels of instance ``k`` in its image.
* Every loss returns a scalar tensor connected to the autograd graph of ``embeddings``, also
  when there is nothing to compute (then its value is 0 and its gradient is 0).
* The batch losses treat the whole batch at once (no Python loop over images): each
  (image, id) pair gets one global index, per-image terms come from index_add over it and
  from tensors padded to the largest instance count of an image. Their host synchronisations
  are a constant few per call (on CUDA they would otherwise stall once per image).

The terms:

* discriminative loss (De Brabandere et al. 2017): pull to the instance mean (hinge
  ``delta_v``), push between instance means (hinge ``2 * delta_d``), a small regulariser on the
  norms of the means;
* per-instance Dice loss between the soft mask ``phi(||e - mu_k||)`` and the instance's binary
  mask (Wolny et al. 2022, computed per instance and then averaged);
* unlabelled push: embeddings of pixels in an unlabelled region are kept at least ``delta_d``
  away from every labelled instance mean.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F

DELTA_V = 0.5
"""Pull margin: embeddings within this distance of their instance mean are not pulled."""

DELTA_D = 2.0
"""Push margin: instance means are pushed apart until ``2 * DELTA_D`` away from each other."""

DICE_EPS = 1e-6
"""Added to the Dice denominator so that an empty prediction and an empty mask give no NaN."""

SPOCO_TERMS = ("discriminative", "dice", "unlabelled")
"""The keys of the ``weights`` dict of :func:`spoco_loss`."""


def _zero(embeddings: torch.Tensor) -> torch.Tensor:
    """A scalar 0 that is still connected to the graph of ``embeddings`` (its gradient is 0)."""
    return embeddings.sum() * 0.0


def _check_batch(embeddings: torch.Tensor, instances: torch.Tensor) -> None:
    if embeddings.dim() != 4:
        raise ValueError(f"embeddings must have shape (B, D, H, W), got {tuple(embeddings.shape)}")
    b, _, h, w = embeddings.shape
    if tuple(instances.shape) != (b, h, w):
        raise ValueError(
            f"instances must have shape (B, H, W) = {(b, h, w)} to match the embeddings, "
            f"got {tuple(instances.shape)}"
        )


def two_sigma(delta_v: float = DELTA_V) -> float:
    """The kernel width ``2 sigma^2`` of :func:`soft_mask`, chosen so that ``phi(delta_v) = 0.5``.

    ``phi(d) = exp(-d^2 / two_sigma)`` with ``two_sigma = delta_v^2 / (-ln 0.5) = delta_v^2 / ln 2``
    (squared embedding units).
    """
    return delta_v * delta_v / (-math.log(0.5))


def instance_means(embeddings: torch.Tensor, instances: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean embedding of every instance of one image.

    Parameters
    ----------
    embeddings:
        ``(D, H, W)`` float, the embeddings of one image.
    instances:
        ``(H, W)`` integer instance ids; ids ``<= 0`` belong to no instance.

    Returns
    -------
    ids:
        ``(K,)`` int64, the instance ids present, ascending (``K = 0`` when there are none).
    means:
        ``(K, D)`` float, ``means[k]`` is the mean embedding of the pixels with id ``ids[k]``
        (differentiable w.r.t. ``embeddings``).
    """
    if embeddings.dim() != 3 or tuple(instances.shape) != tuple(embeddings.shape[1:]):
        raise ValueError(
            f"expected embeddings (D, H, W) and instances (H, W), got {tuple(embeddings.shape)} "
            f"and {tuple(instances.shape)}"
        )
    ids, index, values, counts = _gather_instances(embeddings, instances)
    means = values.new_zeros((ids.numel(), embeddings.shape[0])).index_add(0, index, values)
    return ids, means / counts[:, None]


def _gather_instances(embeddings: torch.Tensor, instances: torch.Tensor):
    """The instance pixels of one image: (ids (K,), index (P,) into ids, values (P, D), counts (K,))."""
    d = embeddings.shape[0]
    flat_ids = instances.reshape(-1).to(torch.int64)
    inside = flat_ids > 0
    ids, index = torch.unique(flat_ids[inside], sorted=True, return_inverse=True)
    values = embeddings.reshape(d, -1)[:, inside].t()
    counts = torch.bincount(index, minlength=ids.numel()).to(embeddings.dtype)
    return ids, index, values, counts


class _Instances(NamedTuple):
    """The instances of a whole batch, each (image, id) pair numbered ``0 .. K-1``.

    Numbering is by image, then by id, so the instances of one image are contiguous and in
    the order :func:`instance_means` gives them. ``P`` is the number of instance pixels of
    the batch, ``N = H * W``, ``Kmax`` the largest number of instances of one image.
    """

    index: torch.Tensor  # (P,) int64, the instance of each instance pixel
    values: torch.Tensor  # (P, D) float, the embeddings of those pixels
    counts: torch.Tensor  # (K,) float, pixels per instance
    means: torch.Tensor  # (K, D) float, differentiable
    image: torch.Tensor  # (K,) int64, the image of each instance
    slot: torch.Tensor  # (K,) int64, its position among the instances of its image
    per_image: torch.Tensor  # (B,) float, instances per image
    valid: torch.Tensor  # (B, Kmax) bool, which padded slots hold an instance
    padded_means: torch.Tensor  # (B, Kmax, D) float, means by (image, slot), 0 in empty slots
    pixel_slot: torch.Tensor  # (B, N) int64, the slot of each pixel's instance, -1 outside


def _group_instances(embeddings: torch.Tensor, instances: torch.Tensor) -> _Instances | None:
    """Number the instances of the batch and take their means; None when there is none.

    Three host synchronisations per call, whatever the batch size: the nonzero that picks the
    instance pixels, ``torch.unique`` and ``Kmax`` (the shape of the padded tensors).
    """
    b, d, h, w = embeddings.shape
    n = h * w
    if b * n == 0:
        return None
    flat = instances.reshape(b, n).to(torch.int64)
    # ids are only unique within an image: folding the image index into the key makes two
    # images' id 3 two instances; ``span`` stays a tensor so that no sync is needed for it
    span = flat.max().clamp_min(0) + 1
    keys = (torch.arange(b, device=flat.device)[:, None] * span + flat).reshape(-1)
    pixels = (flat.reshape(-1) > 0).nonzero().squeeze(1)  # (P,)
    keys, index = torch.unique(keys[pixels], sorted=True, return_inverse=True)
    k = keys.numel()
    if k == 0:
        return None
    values = embeddings.permute(0, 2, 3, 1).reshape(b * n, d)[pixels]
    counts = torch.bincount(index, minlength=k).to(embeddings.dtype)
    means = values.new_zeros((k, d)).index_add(0, index, values) / counts[:, None]

    image = torch.div(keys, span, rounding_mode="floor")
    per_image = torch.bincount(image, minlength=b)
    slot = torch.arange(k, device=flat.device) - (torch.cumsum(per_image, 0) - per_image)[image]
    kmax = int(per_image.max())
    valid = torch.arange(kmax, device=flat.device)[None, :] < per_image[:, None]
    padded = means.new_zeros((b * kmax, d)).index_copy(0, image * kmax + slot, means).view(b, kmax, d)
    pixel_slot = flat.new_full((b * n,), -1).index_copy(0, pixels, slot[index]).view(b, n)
    return _Instances(
        index, values, counts, means, image, slot, per_image.to(embeddings.dtype), valid, padded, pixel_slot
    )


def _per_image_mean(group: _Instances, per_instance: torch.Tensor) -> torch.Tensor:
    """``(B,)`` mean over the instances of each image of a ``(K,)`` value (0 without instance)."""
    sums = per_instance.new_zeros(group.per_image.shape).index_add(0, group.image, per_instance)
    return sums / group.per_image.clamp_min(1.0)


def _discriminative(
    group: _Instances, delta_v: float, delta_d: float, alpha: float, beta: float, gamma: float
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """:func:`discriminative_loss` of a grouped batch that has at least one instance."""
    means, index, counts = group.means, group.index, group.counts
    # pull: hinge on the distance of each pixel to its own instance mean, mean per instance first
    dist = torch.linalg.vector_norm(group.values - means[index], dim=1)
    hinge = F.relu(dist - delta_v) ** 2
    pull = _per_image_mean(group, hinge.new_zeros(counts.shape).index_add(0, index, hinge) / counts)

    # push: ordered pairs k != l of the same image, from the padded (B, Kmax, Kmax) distances;
    # vector_norm has a zero subgradient on the (masked) zero diagonal, so no NaN flows back
    valid = group.valid
    kmax = valid.shape[1]
    pairs = valid[:, :, None] & valid[:, None, :] & ~torch.eye(kmax, dtype=torch.bool, device=valid.device)
    diff = group.padded_means[:, :, None, :] - group.padded_means[:, None, :, :]
    hinge = F.relu(2.0 * delta_d - torch.linalg.vector_norm(diff, dim=-1)) ** 2
    n_pairs = group.per_image * (group.per_image - 1.0)
    # an image with a single instance has no pair and contributes push 0 (it still counts)
    push = torch.where(pairs, hinge, 0.0).sum((1, 2)) / n_pairs.clamp_min(1.0)

    reg = _per_image_mean(group, torch.linalg.vector_norm(means, dim=1))

    # mean over the images that have an instance; the others hold 0 in the per-image sums
    n_images = (group.per_image > 0).sum().to(means.dtype)
    pull, push, reg = pull.sum() / n_images, push.sum() / n_images, reg.sum() / n_images
    total = alpha * pull + beta * push + gamma * reg
    return total, {"pull": pull, "push": push, "reg": reg}


def discriminative_loss(
    embeddings: torch.Tensor,
    instances: torch.Tensor,
    delta_v: float = DELTA_V,
    delta_d: float = DELTA_D,
    alpha: float = 1.0,
    beta: float = 1.0,
    gamma: float = 0.001,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Discriminative loss of De Brabandere et al. (2017).

    Per image, with ``mu_k`` the mean embedding of instance ``k``:

    * ``pull = mean_k mean_{i in k} relu(||e_i - mu_k|| - delta_v)^2``
    * ``push = mean_{k != l} relu(2 delta_d - ||mu_k - mu_l||)^2`` over ordered pairs
      (0 with fewer than two instances)
    * ``reg = mean_k ||mu_k||``
    * ``total = alpha pull + beta push + gamma reg``

    Parameters
    ----------
    embeddings:
        ``(B, D, H, W)`` float embeddings.
    instances:
        ``(B, H, W)`` int64 instance ids, ``0`` = no instance (such pixels take no part).
    delta_v, delta_d:
        Pull and push margins in embedding units.
    alpha, beta, gamma:
        Weights of pull, push and reg.

    Returns
    -------
    total:
        Scalar tensor: the mean of the per-image totals over the images that have at least one
        instance; 0 (still differentiable) when no image has one.
    parts:
        ``{"pull", "push", "reg"}``: scalar tensors, each the mean over the same images, so that
        ``total == alpha * pull + beta * push + gamma * reg``.
    """
    _check_batch(embeddings, instances)
    group = _group_instances(embeddings, instances)
    if group is None:
        zero = _zero(embeddings)
        return zero, {"pull": zero, "push": zero, "reg": zero}
    return _discriminative(group, delta_v, delta_d, alpha, beta, gamma)


def _squared_distances(embeddings: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
    """``(B, K, N)`` squared distances between anchors ``(B, K, D)`` and embeddings ``(B, D, N)``.

    Uses ``|e|^2 + |a|^2 - 2 a.e`` (memory ``B*K*N`` instead of ``B*K*D*N``), clamped at 0.
    """
    cross = torch.einsum("bkd,bdn->bkn", anchors, embeddings)
    d2 = (embeddings * embeddings).sum(1)[:, None, :] + (anchors * anchors).sum(2)[:, :, None] - 2.0 * cross
    return d2.clamp_min(0.0)


def soft_mask(embeddings: torch.Tensor, anchor: torch.Tensor, delta_v: float = DELTA_V) -> torch.Tensor:
    """Soft instance mask around an anchor embedding: ``phi(||e - a||) = exp(-||e - a||^2 / two_sigma)``.

    ``two_sigma = delta_v^2 / ln 2``, so ``phi(0) = 1`` and ``phi(delta_v) = 0.5``; values lie in
    ``(0, 1]`` (they underflow to 0 for far embeddings in float32).

    Shapes (the leading dimensions of the result follow those of the inputs):

    * embeddings ``(D, H, W)``, anchor ``(D,)`` -> ``(H, W)``
    * embeddings ``(D, H, W)``, anchors ``(K, D)`` -> ``(K, H, W)``, one mask per anchor
    * embeddings ``(B, D, H, W)``, anchors ``(B, D)`` -> ``(B, H, W)``, one anchor per image
    * embeddings ``(B, D, H, W)``, anchors ``(B, K, D)`` -> ``(B, K, H, W)``

    ``delta_v`` is in embedding units. The squared distance is computed as
    ``|e|^2 + |a|^2 - 2 a.e`` (clamped at 0) to keep memory at one value per pixel and anchor.
    """
    if embeddings.dim() == 3:
        d, h, w = embeddings.shape
        if anchor.dim() not in (1, 2) or anchor.shape[-1] != d:
            raise ValueError(f"anchor must have shape (D,) or (K, D) with D = {d}, got {tuple(anchor.shape)}")
        anchors = anchor.reshape(1, -1, d)
        out_shape = (h, w) if anchor.dim() == 1 else (anchor.shape[0], h, w)
        batch = embeddings.reshape(1, d, h * w)
    elif embeddings.dim() == 4:
        b, d, h, w = embeddings.shape
        if anchor.dim() not in (2, 3) or anchor.shape[0] != b or anchor.shape[-1] != d:
            raise ValueError(
                f"anchor must have shape (B, D) or (B, K, D) with B = {b}, D = {d}, got {tuple(anchor.shape)}"
            )
        anchors = anchor.reshape(b, -1, d)
        out_shape = (b, h, w) if anchor.dim() == 2 else (b, anchor.shape[1], h, w)
        batch = embeddings.reshape(b, d, h * w)
    else:
        raise ValueError(f"embeddings must have shape (D, H, W) or (B, D, H, W), got {tuple(embeddings.shape)}")
    d2 = _squared_distances(batch, anchors.to(batch.dtype))
    return torch.exp(-d2 / two_sigma(delta_v)).reshape(out_shape)


def dice_loss_per_instance(
    embeddings: torch.Tensor, instances: torch.Tensor, delta_v: float = DELTA_V, eps: float = DICE_EPS
) -> torch.Tensor:
    """Mean over all instances of all images of the Dice loss of each instance's soft mask.

    For instance ``k`` of an image, ``p = soft_mask(e, mu_k)`` over all pixels of the image and
    ``g`` its binary ground-truth mask; its loss is
    ``1 - 2 sum(p g) / (sum(p^2) + sum(g^2) + eps)`` (unitless, in ``[0, 1]``). Each instance
    counts once, whatever its size: the losses are averaged, not the sums pooled.

    Parameters
    ----------
    embeddings:
        ``(B, D, H, W)`` float embeddings.
    instances:
        ``(B, H, W)`` int64 instance ids, ``0`` = no instance.
    delta_v:
        Margin (embedding units) at which the soft mask is 0.5.

    Returns
    -------
    Scalar tensor; 0 (still differentiable) when the batch has no instance.
    """
    _check_batch(embeddings, instances)
    group = _group_instances(embeddings, instances)
    if group is None:
        return _zero(embeddings)
    return _dice(group, _anchor_distances(embeddings, group), delta_v, eps)


def _anchor_distances(embeddings: torch.Tensor, group: _Instances) -> torch.Tensor:
    """``(B, Kmax, N)`` squared distances from every pixel to every instance mean of its image."""
    b, d = embeddings.shape[:2]
    return _squared_distances(embeddings.reshape(b, d, -1), group.padded_means)


def _dice(group: _Instances, d2: torch.Tensor, delta_v: float, eps: float) -> torch.Tensor:
    """:func:`dice_loss_per_instance` from the squared distances ``d2`` of :func:`_anchor_distances`.

    The anchors are the instance means (deterministic, no random draw); empty slots of the
    padding get a loss that is masked out.
    """
    p = torch.exp(-d2 / two_sigma(delta_v))  # (B, Kmax, N)
    b, kmax, n = p.shape
    # sum(p g) only needs p at each pixel's own slot: a gather, not a dense (B, Kmax, N) mask
    inside = group.pixel_slot >= 0
    own = p.gather(1, group.pixel_slot.clamp_min(0)[:, None, :])[:, 0]  # (B, N)
    flat_slot = torch.arange(b, device=p.device)[:, None] * kmax + group.pixel_slot
    overlap = p.new_zeros(b * kmax).index_add(0, flat_slot[inside], own[inside]).view(b, kmax)
    sizes = p.new_zeros(b * kmax).index_copy(0, group.image * kmax + group.slot, group.counts).view(b, kmax)
    dice = 2.0 * overlap / ((p * p).sum(2) + sizes + eps)
    return torch.where(group.valid, 1.0 - dice, 0.0).sum() / group.counts.numel()


def unlabelled_push_loss(
    embeddings: torch.Tensor,
    instances: torch.Tensor,
    unlabelled_mask: torch.Tensor,
    delta_d: float = DELTA_D,
) -> torch.Tensor:
    """Push the embeddings of unlabelled pixels at least ``delta_d`` away from every instance mean.

    ``mean over (unlabelled pixel i, instance k of its image) of relu(delta_d - ||e_i - mu_k||)^2``,
    the mean taken over all such pairs of the batch.

    Parameters
    ----------
    embeddings:
        ``(B, D, H, W)`` float embeddings.
    instances:
        ``(B, H, W)`` int64 instance ids, ``0`` = no instance; they give the means ``mu_k``.
    unlabelled_mask:
        ``(B, H, W)`` bool, True on the pixels to push away.
    delta_d:
        Margin in embedding units.

    Returns
    -------
    Scalar tensor; 0 (still differentiable) when there is no pair (no unlabelled pixel in any
    image that has an instance).
    """
    _check_batch(embeddings, instances)
    _check_mask(instances, unlabelled_mask)
    group = _group_instances(embeddings, instances)
    if group is None:
        return _zero(embeddings)
    return _unlabelled(group, _anchor_distances(embeddings, group), unlabelled_mask, delta_d)


def _check_mask(instances: torch.Tensor, unlabelled_mask: torch.Tensor) -> None:
    if tuple(unlabelled_mask.shape) != tuple(instances.shape):
        raise ValueError(
            f"unlabelled_mask must have shape (B, H, W) = {tuple(instances.shape)}, got {tuple(unlabelled_mask.shape)}"
        )


def _unlabelled(group: _Instances, d2: torch.Tensor, unlabelled_mask: torch.Tensor, delta_d: float) -> torch.Tensor:
    """:func:`unlabelled_push_loss` from the squared distances ``d2`` of :func:`_anchor_distances`.

    The distances are shared with the Dice term; empty padding slots are masked out and the
    number of pairs stays a tensor (no sync on it).
    """
    b, kmax, n = d2.shape
    # only the unlabelled pixels are measured (one nonzero, whatever the batch size)
    pixels = unlabelled_mask.reshape(-1).to(torch.bool).nonzero().squeeze(1)  # (M,)
    image = torch.div(pixels, n, rounding_mode="floor")
    d2 = d2[image, :, pixels - image * n]  # (M, Kmax)
    valid = group.valid[image]  # (M, Kmax): the instances of each pixel's image
    # clamp keeps the gradient of the square root finite where a pixel sits on a mean
    dist = d2.clamp_min(1e-12).sqrt()
    total = torch.where(valid, F.relu(delta_d - dist) ** 2, 0.0).sum()
    return total / valid.sum().clamp_min(1).to(total.dtype)


def spoco_loss(
    embeddings: torch.Tensor,
    instances: torch.Tensor,
    unlabelled_mask: torch.Tensor | None = None,
    weights: dict[str, float] | None = None,
    delta_v: float = DELTA_V,
    delta_d: float = DELTA_D,
    alpha: float = 1.0,
    beta: float = 1.0,
    gamma: float = 0.001,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The instance-branch loss for fully labelled source images.

    ``total = w_discriminative * discriminative + w_dice * dice [+ w_unlabelled * unlabelled_push]``,
    the last term only when ``unlabelled_mask`` is given.

    Parameters
    ----------
    embeddings:
        ``(B, D, H, W)`` float embeddings.
    instances:
        ``(B, H, W)`` int64 instance ids, ``0`` = no instance.
    unlabelled_mask:
        Optional ``(B, H, W)`` bool mask of pixels for :func:`unlabelled_push_loss`.
    weights:
        Optional weights by term, keys among :data:`SPOCO_TERMS`
        (``"discriminative"``, ``"dice"``, ``"unlabelled"``); missing keys weigh 1.0.
    delta_v, delta_d:
        Margins in embedding units, shared by all terms.
    alpha, beta, gamma:
        Weights of pull, push and regulariser inside the discriminative term.

    Returns
    -------
    total:
        Scalar tensor.
    parts:
        Scalar tensors ``"discriminative"``, ``"pull"``, ``"push"``, ``"reg"``, ``"dice"`` and,
        with a mask, ``"unlabelled"`` (all unweighted).
    """
    w = _spoco_weights(weights)
    _check_batch(embeddings, instances)
    if unlabelled_mask is not None:
        _check_mask(instances, unlabelled_mask)
    disc, parts, dice, unlabelled = _spoco_terms(embeddings, instances, unlabelled_mask, delta_v, delta_d,
                                                 alpha, beta, gamma)
    parts = {"discriminative": disc, **parts, "dice": dice}
    total = w["discriminative"] * disc + w["dice"] * dice
    if unlabelled_mask is not None:
        parts["unlabelled"] = unlabelled
        total = total + w["unlabelled"] * unlabelled
    return total, parts


def _spoco_weights(weights: dict[str, float] | None) -> dict[str, float]:
    """The weight of every term of :data:`SPOCO_TERMS`: those given, 1.0 for the others."""
    weights = dict(weights or {})
    unknown = sorted(set(weights) - set(SPOCO_TERMS))
    if unknown:
        raise ValueError(f"unknown spoco_loss weight(s) {unknown}; valid keys: {list(SPOCO_TERMS)}")
    return {term: float(weights.get(term, 1.0)) for term in SPOCO_TERMS}


def _spoco_terms(embeddings: torch.Tensor, instances: torch.Tensor, unlabelled_mask: torch.Tensor | None,
                 delta_v: float, delta_d: float, alpha: float, beta: float, gamma: float
                 ) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor, torch.Tensor | None]:
    """The unweighted terms of :func:`spoco_loss`: discriminative, its parts, Dice, unlabelled push.

    The batch is grouped once (3 syncs); Dice and unlabelled push share the distances to the
    means (1 more sync). All zero without instances; else the last is None without a mask.
    """
    group = _group_instances(embeddings, instances)
    if group is None:
        zero = _zero(embeddings)
        return zero, {"pull": zero, "push": zero, "reg": zero}, zero, zero
    disc, parts = _discriminative(group, delta_v, delta_d, alpha, beta, gamma)
    d2 = _anchor_distances(embeddings, group)
    dice = _dice(group, d2, delta_v, DICE_EPS)
    unlabelled = _unlabelled(group, d2, unlabelled_mask, delta_d) if unlabelled_mask is not None else None
    return disc, parts, dice, unlabelled
