"""The SPOCO instance-embedding losses on tiny embedding maps whose values are worked out by hand."""

from __future__ import annotations

import math

import pytest
import torch

from selfpanoptic.losses import (
    dice_loss_per_instance,
    discriminative_loss,
    instance_means,
    soft_mask,
    spoco_loss,
    two_sigma,
    unlabelled_push_loss,
)


def embedding_map(vectors: list[list[float]], height: int = 1) -> torch.Tensor:
    """(1, D, height, W) float64 embeddings from a row-major list of per-pixel D-vectors."""
    values = torch.tensor(vectors, dtype=torch.float64)  # (H*W, D)
    return values.t().reshape(1, values.shape[1], height, -1).contiguous()


def instance_map(ids: list[int], height: int = 1) -> torch.Tensor:
    return torch.tensor(ids, dtype=torch.int64).reshape(1, height, -1)


# --- instance means -------------------------------------------------------------------------------


def test_instance_means_ignore_background_and_sort_ids():
    emb = embedding_map([[1, 0], [3, 0], [100, 100], [0, 4], [0, 6]])[0]
    ids, means = instance_means(emb, torch.tensor([[7, 7, 0, 2, 2]]))
    assert ids.tolist() == [2, 7]
    assert means.tolist() == [[0, 5], [2, 0]]


def test_instance_means_of_an_image_without_instances_are_empty():
    ids, means = instance_means(torch.randn(8, 2, 3), torch.zeros(2, 3, dtype=torch.int64))
    assert ids.numel() == 0 and tuple(means.shape) == (0, 8)


# --- discriminative loss --------------------------------------------------------------------------


def test_pull_and_push_are_zero_inside_the_margins_and_reg_is_the_mean_norm():
    # instance 1: (0, 0), (0.4, 0) -> mean (0.2, 0), both pixels 0.2 < delta_v away
    # instance 2: (5, 0), (5, 0.6) -> mean (5, 0.3), both 0.3 away; means 4.8 >= 2 * delta_d apart
    emb = embedding_map([[0, 0], [0.4, 0], [5, 0], [5, 0.6]])
    total, parts = discriminative_loss(emb, instance_map([1, 1, 2, 2]))
    assert parts["pull"].item() == 0.0
    assert parts["push"].item() == 0.0
    reg = (0.2 + math.sqrt(25 + 0.09)) / 2
    assert parts["reg"].item() == pytest.approx(reg, abs=1e-12)
    assert total.item() == pytest.approx(0.001 * reg, abs=1e-12)


def test_pull_hand_value_and_background_takes_no_part():
    # instance 1: (0, 0), (2, 0) -> mean (1, 0); each pixel 1 away: relu(1 - 0.5)^2 = 0.25
    # instance 2: one pixel -> pull 0; pull = mean over instances = (0.25 + 0) / 2
    # the background pixel (-50, 80) would change every term if it took part
    emb = embedding_map([[0, 0], [2, 0], [10, 0], [-50, 80]])
    _, parts = discriminative_loss(emb, instance_map([1, 1, 2, 0]))
    assert parts["pull"].item() == pytest.approx(0.125, abs=1e-12)
    assert parts["push"].item() == 0.0  # means (1, 0), (10, 0): 9 >= 4 apart
    assert parts["reg"].item() == pytest.approx((1 + 10) / 2, abs=1e-12)


def test_pull_is_averaged_per_instance_not_per_pixel():
    # instance 1: four pixels at (+-1, 0) -> pull 0.25 each; instance 2: two pixels at its mean
    emb = embedding_map([[-1, 0], [1, 0], [-1, 0], [1, 0], [20, 0], [20, 0]])
    _, parts = discriminative_loss(emb, instance_map([1, 1, 1, 1, 2, 2]))
    assert parts["pull"].item() == pytest.approx(0.125, abs=1e-12)  # per pixel it would be 1/6


def test_push_hand_value_over_ordered_pairs():
    # means (0, 0), (3, 0), (0, 10): only the first pair is closer than 2 * delta_d = 4,
    # relu(4 - 3)^2 = 1 for both orders; 6 ordered pairs -> 2 / 6
    emb = embedding_map([[0, 0], [3, 0], [0, 10]])
    _, parts = discriminative_loss(emb, instance_map([1, 2, 3]))
    assert parts["push"].item() == pytest.approx(1 / 3, abs=1e-12)
    _, two = discriminative_loss(embedding_map([[0, 0], [1, 0]]), instance_map([4, 9]))
    assert two["push"].item() == pytest.approx(9.0, abs=1e-12)  # relu(4 - 1)^2


def test_total_weights_and_batch_mean_over_images_with_instances():
    emb = embedding_map([[0, 0], [2, 0], [3, 0], [3, 0]])
    inst = instance_map([1, 1, 2, 2])
    total, parts = discriminative_loss(emb, inst, alpha=2.0, beta=3.0, gamma=0.5)
    # pull (0.25 + 0) / 2, push relu(4 - 2)^2 = 4, reg (1 + 3) / 2 = 2
    assert parts["pull"].item() == pytest.approx(0.125)
    assert parts["push"].item() == pytest.approx(4.0)
    assert parts["reg"].item() == pytest.approx(2.0)
    assert total.item() == pytest.approx(2 * 0.125 + 3 * 4.0 + 0.5 * 2.0)
    # a second image without instances does not dilute the mean
    batch_emb = torch.cat([emb, torch.randn_like(emb)])
    batch_inst = torch.cat([inst, torch.zeros_like(inst)])
    batch_total, _ = discriminative_loss(batch_emb, batch_inst, alpha=2.0, beta=3.0, gamma=0.5)
    assert batch_total.item() == pytest.approx(total.item())
    # two images with instances: the mean of both totals
    other = embedding_map([[0, 0], [0, 0], [9, 0], [9, 0]])  # pull 0, push 0, reg 4.5
    both, _ = discriminative_loss(torch.cat([emb, other]), torch.cat([inst, inst]), alpha=2.0, beta=3.0, gamma=0.5)
    assert both.item() == pytest.approx((total.item() + 0.5 * 4.5) / 2)


# --- soft mask ------------------------------------------------------------------------------------


def test_soft_mask_is_one_at_the_anchor_and_one_half_at_delta_v():
    emb = embedding_map([[0, 0], [0.5, 0], [0, -1.0]])[0]  # distances 0, delta_v, 2 delta_v
    phi = soft_mask(emb, torch.zeros(2, dtype=torch.float64), delta_v=0.5)
    assert tuple(phi.shape) == (1, 3)
    assert phi[0, 0].item() == 1.0
    assert phi[0, 1].item() == pytest.approx(0.5, rel=1e-12)
    assert phi[0, 2].item() == pytest.approx(0.5**4, rel=1e-12)
    assert two_sigma(0.5) == pytest.approx(0.25 / math.log(2))
    # float32 too, and another delta_v
    phi32 = soft_mask(torch.tensor([[[0.0, 1.5]]]), torch.tensor([0.0]), delta_v=1.5)
    assert phi32.tolist() == [[1.0, pytest.approx(0.5, rel=1e-6)]]


def test_soft_mask_shapes():
    torch.manual_seed(0)
    emb = 0.2 * torch.randn(2, 8, 3, 4)  # close enough together that no value underflows to 0
    assert tuple(soft_mask(emb[0], torch.randn(5, 8)).shape) == (5, 3, 4)
    per_image = soft_mask(emb, emb[:, :, 1, 2])
    assert tuple(per_image.shape) == (2, 3, 4)
    assert torch.allclose(per_image[:, 1, 2], torch.ones(2))
    assert bool(((per_image > 0) & (per_image <= 1)).all())
    assert tuple(soft_mask(emb, torch.randn(2, 5, 8)).shape) == (2, 5, 3, 4)
    with pytest.raises(ValueError):
        soft_mask(emb, torch.randn(3, 8))


# --- Dice -----------------------------------------------------------------------------------------


def test_dice_of_a_soft_mask_equal_to_the_binary_mask_is_zero():
    # every instance pixel sits on its mean (phi = 1); every other pixel is so far that phi = 0
    emb = embedding_map([[0, 0], [0, 0], [100, 0], [100, 0], [0, 100]])
    loss = dice_loss_per_instance(emb, instance_map([1, 1, 2, 2, 0]))
    assert 0.0 <= loss.item() < 1e-6


def test_dice_is_averaged_per_instance_not_pooled():
    # instance 1: 4 pixels on their mean -> Dice loss 0
    # instance 2: 2 pixels at +-delta_v from their mean -> p = 0.5 on both:
    #   1 - 2 * 1 / (0.5 + 2) = 0.2; per-instance mean (0 + 0.2) / 2 = 0.1
    # pooled over both instances it would be 1 - 2 * 5 / (4.5 + 6) = 0.0476
    emb = embedding_map([[0, 0]] * 4 + [[49.5, 0], [50.5, 0]])
    loss = dice_loss_per_instance(emb, instance_map([1, 1, 1, 1, 2, 2]))
    assert loss.item() == pytest.approx(0.1, abs=1e-6)
    assert abs(loss.item() - (1 - 10 / 10.5)) > 0.05


def test_dice_counts_every_instance_of_the_batch_once():
    first = embedding_map([[0, 0]] * 4 + [[49.5, 0], [50.5, 0]])  # losses 0 and 0.2
    second = embedding_map([[0, 0], [0.5, 0], [-0.5, 0], [80, 0], [80, 0], [80, 0]])
    # second image, instance 5 = three pixels at 0, +-delta_v: p = 1, .5, .5 ->
    #   1 - 2 * 2 / (1.5 + 3) = 1/9; instance 6 on its mean -> 0
    loss = dice_loss_per_instance(
        torch.cat([first, second]), torch.cat([instance_map([1, 1, 1, 1, 2, 2]), instance_map([5, 5, 5, 6, 6, 6])])
    )
    assert loss.item() == pytest.approx((0 + 0.2 + 1 / 9 + 0) / 4, abs=1e-6)


# --- unlabelled push ------------------------------------------------------------------------------


def test_unlabelled_push_is_zero_far_from_every_instance():
    emb = embedding_map([[0, 0], [0, 0], [10, 0], [10, 0], [5, 0], [5, 5]])
    inst = instance_map([1, 1, 2, 2, 0, 0])
    mask = torch.tensor([[[False, False, False, False, True, True]]])
    assert unlabelled_push_loss(emb, inst, mask).item() == 0.0  # 5 >= delta_d from both means


def test_unlabelled_push_hand_value():
    # means (0, 0) and (10, 0); unlabelled pixels (1, 0) and (8.5, 0):
    # pairs (1 away, 9 away, 8.5 away, 1.5 away) -> relu(2 - d)^2 = 1, 0, 0, 0.25; mean over 4 pairs
    emb = embedding_map([[0, 0], [0, 0], [10, 0], [10, 0], [1, 0], [8.5, 0]])
    inst = instance_map([1, 1, 2, 2, 0, 0])
    mask = torch.tensor([[[False, False, False, False, True, True]]])
    assert unlabelled_push_loss(emb, inst, mask).item() == pytest.approx(1.25 / 4, abs=1e-9)
    # the margin is delta_d, not 2 * delta_d
    assert unlabelled_push_loss(emb, inst, mask, delta_d=1.25).item() == pytest.approx(0.25**2 / 4, abs=1e-9)


def test_unlabelled_push_without_pixels_or_instances_is_zero():
    emb = embedding_map([[0, 0], [1, 0]])
    assert unlabelled_push_loss(emb, instance_map([1, 0]), torch.zeros(1, 1, 2, dtype=torch.bool)).item() == 0.0
    assert unlabelled_push_loss(emb, instance_map([0, 0]), torch.ones(1, 1, 2, dtype=torch.bool)).item() == 0.0


# --- the combined loss, gradients, empty batches --------------------------------------------------


def test_spoco_loss_combines_the_weighted_terms():
    torch.manual_seed(0)
    emb = torch.randn(2, 8, 6, 5, dtype=torch.float64)
    inst = torch.randint(0, 4, (2, 6, 5))
    mask = inst == 0
    total, parts = spoco_loss(emb, inst, mask, weights={"dice": 2.0, "unlabelled": 0.5})
    disc, disc_parts = discriminative_loss(emb, inst)
    assert parts["discriminative"].item() == pytest.approx(disc.item())
    assert parts["pull"].item() == pytest.approx(disc_parts["pull"].item())
    assert parts["dice"].item() == pytest.approx(dice_loss_per_instance(emb, inst).item())
    assert parts["unlabelled"].item() == pytest.approx(unlabelled_push_loss(emb, inst, mask).item())
    expected = disc.item() + 2.0 * parts["dice"].item() + 0.5 * parts["unlabelled"].item()
    assert total.item() == pytest.approx(expected)
    no_mask_total, no_mask_parts = spoco_loss(emb, inst)
    assert "unlabelled" not in no_mask_parts
    assert no_mask_total.item() == pytest.approx(disc.item() + parts["dice"].item())
    with pytest.raises(ValueError, match="unknown"):
        spoco_loss(emb, inst, weights={"dcie": 1.0})


def test_gradients_are_finite_also_for_degenerate_instances():
    torch.manual_seed(1)
    emb = torch.randn(2, 8, 6, 5)
    inst = torch.randint(0, 4, (2, 6, 5))
    # degenerate cases: a one-pixel instance (pixel == mean), two instances with the same mean,
    # an unlabelled pixel exactly on a mean
    emb[0, :, 0, 0] = 0.0
    inst[0, 0, 0] = 7
    emb[1] = 0.0
    emb[1, :, :, :2] = 1.0
    inst[1] = 0
    inst[1, 0, 0], inst[1, 0, 1], inst[1, 1, 0], inst[1, 1, 1] = 1, 1, 2, 2
    emb.requires_grad_(True)
    total, _ = spoco_loss(emb, inst, unlabelled_mask=inst == 0)
    total.backward()
    assert torch.isfinite(total)
    assert bool(torch.isfinite(emb.grad).all())
    assert emb.grad.abs().sum().item() > 0


def test_images_without_instances_give_zero_and_no_nan():
    emb = torch.randn(2, 8, 4, 4, requires_grad=True)
    inst = torch.zeros(2, 4, 4, dtype=torch.int64)
    total, parts = spoco_loss(emb, inst, unlabelled_mask=torch.ones(2, 4, 4, dtype=torch.bool))
    assert total.item() == 0.0
    assert all(value.item() == 0.0 for value in parts.values())
    total.backward()
    assert emb.grad is not None and bool((emb.grad == 0).all())


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="instances"):
        discriminative_loss(torch.randn(1, 8, 4, 4), torch.zeros(1, 4, 5, dtype=torch.int64))


# --- batched losses == the former per-image implementation ------------------------------------


def _ref_gather(emb, inst):
    """Former per-image grouping: ids (K,), index (P,), values (P, D), counts (K,)."""
    flat = inst.reshape(-1)
    inside = flat > 0
    ids, index = torch.unique(flat[inside], sorted=True, return_inverse=True)
    values = emb.reshape(emb.shape[0], -1)[:, inside].t()
    return ids, index, values, torch.bincount(index, minlength=ids.numel()).to(emb.dtype)


def _ref_means(emb, inst):
    ids, index, values, counts = _ref_gather(emb, inst)
    return ids, values.new_zeros((ids.numel(), values.shape[1])).index_add(0, index, values) / counts[:, None]


def _ref_d2(points, anchors):
    """Former squared distances ``(K, M)`` between anchors (K, D) and points (D, M)."""
    d2 = (points * points).sum(0)[None, :] + (anchors * anchors).sum(1)[:, None] - 2.0 * anchors @ points
    return d2.clamp_min(0.0)


def _ref_discriminative(emb, inst, delta_v=0.5, delta_d=2.0, alpha=1.0, beta=1.0, gamma=0.001):
    """Former loop over images: per-image pull/push/reg, mean over the images with an instance."""
    terms = []
    for b in range(emb.shape[0]):
        ids, index, values, counts = _ref_gather(emb[b], inst[b])
        k = ids.numel()
        if k == 0:
            continue
        means = values.new_zeros((k, values.shape[1])).index_add(0, index, values) / counts[:, None]
        hinge = torch.relu(torch.linalg.vector_norm(values - means[index], dim=1) - delta_v) ** 2
        pull = (hinge.new_zeros(k).index_add(0, index, hinge) / counts).mean()
        if k > 1:
            diff = (means[:, None] - means[None])[~torch.eye(k, dtype=torch.bool)]
            push = (torch.relu(2.0 * delta_d - torch.linalg.vector_norm(diff, dim=1)) ** 2).mean()
        else:
            push = emb.sum() * 0.0
        terms.append((pull, push, torch.linalg.vector_norm(means, dim=1).mean()))
    if not terms:
        zero = emb.sum() * 0.0
        return zero, {"pull": zero, "push": zero, "reg": zero}
    pull, push, reg = (torch.stack(column).mean() for column in zip(*terms))
    return alpha * pull + beta * push + gamma * reg, {"pull": pull, "push": push, "reg": reg}


def _ref_dice(emb, inst, delta_v=0.5, eps=1e-6):
    losses = []
    for b in range(emb.shape[0]):
        ids, means = _ref_means(emb[b], inst[b])
        if ids.numel() == 0:
            continue
        p = torch.exp(-_ref_d2(emb[b].reshape(emb.shape[1], -1), means) / two_sigma(delta_v))
        g = (inst[b].reshape(1, -1) == ids[:, None]).to(p.dtype)
        losses.append(1.0 - 2.0 * (p * g).sum(1) / ((p * p).sum(1) + (g * g).sum(1) + eps))
    return torch.cat(losses).mean() if losses else emb.sum() * 0.0


def _ref_unlabelled(emb, inst, mask, delta_d=2.0):
    total, pairs = emb.sum() * 0.0, 0
    for b in range(emb.shape[0]):
        m = mask[b].reshape(-1)
        ids, means = _ref_means(emb[b], inst[b])
        if not bool(m.any()) or ids.numel() == 0:
            continue
        dist = _ref_d2(emb[b].reshape(emb.shape[1], -1)[:, m], means).clamp_min(1e-12).sqrt()
        total = total + (torch.relu(delta_d - dist) ** 2).sum()
        pairs += dist.numel()
    return total / pairs if pairs else total


def _random_batch(seed, counts, d=4, h=12, w=16):
    """Embeddings (float32) and instances with ``counts[b]`` instances in image b.

    Ids are non-contiguous and drawn from a small pool, so the same id recurs across images;
    negative values mark ignore pixels.
    """
    g = torch.Generator().manual_seed(seed)
    emb = (2.0 * torch.randn(len(counts), d, h, w, generator=g)).requires_grad_(True)
    inst = torch.zeros(len(counts), h, w, dtype=torch.int64)
    for b, k in enumerate(counts):
        ids = torch.randperm(40, generator=g)[:k] * 3 + 1
        labels = torch.randint(0, k + 1, (h, w), generator=g)
        for j in range(k):
            inst[b][labels == j + 1] = ids[j]
            inst[b, j % h, j % w] = ids[j]  # every drawn id keeps at least one pixel
    inst[torch.rand(inst.shape, generator=g) < 0.05] = -1
    mask = (inst <= 0) & (torch.rand(inst.shape, generator=g) < 0.5)
    return emb, inst, mask


BATCHES = [[0, 1, 7, 3], [5], [1], [0, 0], [1, 1, 1], [12, 0, 2, 9, 1, 4]]


def _assert_same(new, ref, emb):
    assert torch.allclose(new, ref, rtol=1e-5, atol=1e-6), (new.item(), ref.item())
    (g_new,) = torch.autograd.grad(new, emb, retain_graph=True)
    (g_ref,) = torch.autograd.grad(ref, emb, retain_graph=True)
    assert torch.allclose(g_new, g_ref, rtol=1e-5, atol=1e-6), (g_new - g_ref).abs().max().item()


@pytest.mark.parametrize("seed, counts", list(enumerate(BATCHES)))
def test_batched_losses_equal_the_per_image_reference(seed, counts):
    emb, inst, mask = _random_batch(seed, counts)
    total, parts = discriminative_loss(emb, inst)
    ref_total, ref_parts = _ref_discriminative(emb, inst)
    _assert_same(total, ref_total, emb)
    for key in ("pull", "push", "reg"):
        _assert_same(parts[key], ref_parts[key], emb)
    _assert_same(dice_loss_per_instance(emb, inst), _ref_dice(emb, inst), emb)
    _assert_same(unlabelled_push_loss(emb, inst, mask), _ref_unlabelled(emb, inst, mask), emb)


@pytest.mark.parametrize("with_mask", [True, False])
@pytest.mark.parametrize("seed, counts", list(enumerate(BATCHES)))
def test_batched_spoco_loss_equals_the_per_image_reference(seed, counts, with_mask):
    emb, inst, mask = _random_batch(100 + seed, counts)
    weights = {"discriminative": 1.0, "dice": 0.7, "unlabelled": 0.3}
    total, parts = spoco_loss(emb, inst, mask if with_mask else None, weights=weights)
    disc, ref_parts = _ref_discriminative(emb, inst)
    ref_parts = {"discriminative": disc, **ref_parts, "dice": _ref_dice(emb, inst)}
    ref_total = disc + 0.7 * ref_parts["dice"]
    if with_mask:
        ref_parts["unlabelled"] = _ref_unlabelled(emb, inst, mask)
        ref_total = ref_total + 0.3 * ref_parts["unlabelled"]
    assert sorted(parts) == sorted(ref_parts)
    _assert_same(total, ref_total, emb)
    for key in parts:
        _assert_same(parts[key], ref_parts[key], emb)


def test_the_same_id_in_two_images_is_two_instances():
    # id 4 in both images: as one instance its mean would be (5, 0) and both pulls large
    emb = torch.tensor([[[[0.0, 0.0]], [[0.0, 0.0]]], [[[10.0, 10.0]], [[0.0, 0.0]]]], dtype=torch.float64)
    inst = torch.full((2, 1, 2), 4, dtype=torch.int64)
    total, parts = discriminative_loss(emb, inst)
    assert parts["pull"].item() == 0.0 and parts["push"].item() == 0.0
    assert parts["reg"].item() == pytest.approx(5.0)
