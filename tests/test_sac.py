"""SAC building blocks: momentum teacher, view geometry, fused pseudo-labels, prior, loss, noise."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from selfpanoptic.pseudo.sac import (
    class_peaks,
    class_thresholds,
    focal_confidence_ce,
    initial_prior,
    make_views,
    momentum_update,
    photometric_noise,
    pseudo_labels_from_probs,
    labels_to_views,
    pseudo_labels_in_reference,
    random_view_affines,
    refine_with_instances,
    sample_instances,
    thresholds_from_peaks,
    update_prior,
    warp_to_reference,
    warp_to_views,
)

IDENTITY = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]
FLIP = [[-1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]
CENTRE_HALF = [[0.5, 0.0, 0.0], [0.0, 0.5, 0.0]]  # middle half of the image, zoomed 2x


def affines(*views) -> torch.Tensor:
    """(1, V, 2, 3) from 2x3 nested lists."""
    return torch.tensor([views], dtype=torch.float32)


def ramp(h: int, w: int, channels: int = 1) -> torch.Tensor:
    """(1, C, H, W) map linear in the normalised pixel-centre coordinates (bilinear-exact)."""
    ys = (2 * torch.arange(h) + 1) / h - 1
    xs = (2 * torch.arange(w) + 1) / w - 1
    base = xs[None, :] + 2 * ys[:, None]
    return torch.stack([base * (k + 1) + k for k in range(channels)])[None]


def centres(n: int) -> torch.Tensor:
    return (2 * torch.arange(n) + 1) / n - 1


# ---------------------------------------------------------------------------------------------
# Momentum teacher


def small_net() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Conv2d(1, 2, 1), torch.nn.BatchNorm2d(2))


def test_momentum_update_parameters_and_batchnorm_buffers():
    torch.manual_seed(0)
    teacher, student = small_net(), small_net()
    with torch.no_grad():  # BN affine starts at (1, 0) in both nets otherwise
        student[1].weight.uniform_(2.0, 3.0)
        student[1].bias.uniform_(1.0, 2.0)
    student(torch.randn(4, 1, 3, 3))  # moves the student's running stats, num_batches_tracked = 1
    student(torch.randn(4, 1, 3, 3))  # num_batches_tracked = 2
    before_t = {k: v.clone() for k, v in teacher.state_dict().items()}
    s = student.state_dict()
    momentum_update(teacher, student, momentum=0.9)
    after = teacher.state_dict()
    for name in ("0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean", "1.running_var"):
        expected = 0.9 * before_t[name] + 0.1 * s[name]
        assert torch.allclose(after[name], expected), name
        assert not torch.allclose(after[name], before_t[name]), name  # it really moved
    assert after["1.num_batches_tracked"].item() == 2  # integer buffer copied
    assert after["1.running_mean"].abs().sum() > 0


def test_momentum_update_is_not_tracked_by_autograd_and_checks_architecture():
    teacher, student = small_net(), small_net()
    momentum_update(teacher, student)
    assert all(p.grad_fn is None for p in teacher.parameters())
    with pytest.raises(ValueError):
        momentum_update(teacher, torch.nn.Conv2d(1, 2, 1))


# ---------------------------------------------------------------------------------------------
# View geometry


def test_random_view_affines_shape_identity_reference_and_ranges():
    theta = random_view_affines(3, 4, np.random.default_rng(0), min_scale=0.5, max_scale=1.0)
    assert theta.shape == (3, 4, 2, 3) and theta.dtype == torch.float32
    assert torch.equal(theta[:, 0], torch.tensor(IDENTITY).expand(3, 2, 3))
    crops = theta[:, 1:]
    scale = crops[..., 1, 1]
    assert ((scale >= 0.5) & (scale <= 1.0)).all()
    assert torch.allclose(crops[..., 0, 0].abs(), scale)  # same zoom in x and y
    assert (crops[..., 0, 2].abs() <= 1 - scale + 1e-6).all()  # crop stays inside the image
    assert (crops[..., 1, 2].abs() <= 1 - scale + 1e-6).all()
    assert torch.equal(theta, random_view_affines(3, 4, np.random.default_rng(0)))
    flips = random_view_affines(50, 2, np.random.default_rng(1))[:, 1, 0, 0] < 0
    assert 10 < int(flips.sum()) < 40
    never = random_view_affines(20, 2, np.random.default_rng(1), flip_p=0.0)[:, 1, 0, 0]
    assert (never > 0).all()


def test_identity_views_reproduce_the_image():
    images = torch.rand(2, 3, 5, 7, generator=torch.Generator().manual_seed(0))
    views = make_views(images, torch.tensor(IDENTITY).expand(2, 3, 2, 3))
    assert views.shape == (6, 3, 5, 7)
    for b in range(2):
        for v in range(3):
            assert torch.allclose(views[3 * b + v], images[b], atol=1e-6)


def test_crop_view_shows_the_mapped_reference_points():
    image = ramp(8, 8)
    view = make_views(image, affines(CENTRE_HALF))[0, 0]
    # view pixel at v shows the reference at 0.5 * v; the ramp is x + 2y
    expected = 0.5 * centres(8)[None, :] + 2 * 0.5 * centres(8)[:, None]
    assert torch.allclose(view, expected, atol=1e-5)


def test_flip_view_mirrors_and_warps_back_exactly():
    maps = torch.rand(1, 4, 3, 5, generator=torch.Generator().manual_seed(1))
    theta = affines(FLIP)
    flipped = warp_to_views(maps, theta)
    assert torch.allclose(flipped, maps.flip(-1), atol=1e-6)
    back, coverage = warp_to_reference(flipped, theta)
    assert torch.allclose(back, maps, atol=1e-6)
    assert torch.equal(coverage, torch.ones(1, 1, 3, 5))


def test_crop_out_and_back_is_identity_inside_the_crop_and_uncovered_outside():
    maps = ramp(8, 8, channels=2)
    theta = affines(CENTRE_HALF)
    back, coverage = warp_to_reference(warp_to_views(maps, theta), theta)
    inside = torch.zeros(8, 8, dtype=torch.bool)
    inside[2:6, 2:6] = True  # reference pixels whose centres lie in [-0.5, 0.5]^2
    assert torch.equal(coverage[0, 0] > 0, inside)
    assert torch.allclose(back[0][:, inside], maps[0][:, inside], atol=1e-5)
    assert (back[0][:, ~inside] == 0).all()


def test_reference_view_covers_everything():
    maps = ramp(8, 8).repeat(2, 1, 1, 1)
    theta = affines(IDENTITY, CENTRE_HALF)
    _, coverage = warp_to_reference(make_views(maps[:1], theta), theta)
    expected = torch.ones(8, 8)
    expected[2:6, 2:6] = 2
    assert torch.equal(coverage[0, 0], expected)


def test_fused_map_averages_over_the_covering_views():
    theta = affines(IDENTITY, CENTRE_HALF)
    maps = torch.stack([torch.full((1, 8, 8), 0.2), torch.full((1, 8, 8), 0.6)])
    fused, _ = warp_to_reference(maps, theta)
    expected = torch.full((8, 8), 0.2)
    expected[2:6, 2:6] = 0.4
    assert torch.allclose(fused[0, 0], expected, atol=1e-6)


def test_warping_rejects_mismatched_views():
    with pytest.raises(ValueError):
        warp_to_reference(torch.zeros(3, 1, 4, 4), affines(IDENTITY, FLIP))


# ---------------------------------------------------------------------------------------------
# Thresholds and pseudo-labels


def probs_1x2x1x3() -> torch.Tensor:
    # pixels: class 0 at 0.9, class 0 at 0.6, class 1 at 0.7; no class 2 anywhere
    p0 = torch.tensor([0.9, 0.6, 0.3])
    p1 = 1 - p0
    return torch.stack([p0, p1, torch.zeros(3)])[None, :, None, :]


def test_class_thresholds_hand_values_and_floor_for_unseen_classes():
    prior = torch.tensor([2e-3, 1e-3, 0.5])
    thr = class_thresholds(probs_1x2x1x3(), prior)
    t0 = 0.9 * 0.75 * (1 - math.exp(-2.0))  # 0.5838...
    t1 = max(0.7 * 0.75 * (1 - math.exp(-1.0)), 0.2)  # 0.3318...
    assert thr.shape == (1, 3)
    assert thr[0, 0].item() == pytest.approx(t0, rel=1e-5)
    assert thr[0, 1].item() == pytest.approx(t1, rel=1e-5)
    assert thr[0, 2].item() == pytest.approx(0.2)  # never predicted: the floor
    tiny = class_thresholds(probs_1x2x1x3(), torch.tensor([1e-6, 1e-6, 1e-6]))
    assert torch.allclose(tiny, torch.full((1, 3), 0.2))  # rare classes: floor


def test_class_thresholds_ignore_invalid_pixels():
    valid = torch.tensor([[[False, True, True]]])
    thr = class_thresholds(probs_1x2x1x3(), torch.full((3,), 1.0), valid=valid)
    assert thr[0, 0].item() == pytest.approx(0.6 * 0.75 * (1 - math.exp(-1000.0)), rel=1e-5)


def test_pseudo_labels_keep_only_pixels_above_their_class_threshold():
    probs = probs_1x2x1x3()
    thresholds = torch.tensor([[0.65, 0.69, 0.2]])
    labels, confidence = pseudo_labels_from_probs(probs, thresholds)
    assert labels.dtype == torch.int64
    assert labels.tolist() == [[[0, 255, 1]]]
    assert torch.allclose(confidence, torch.tensor([[[0.9, 0.6, 0.7]]]))
    labels, _ = pseudo_labels_from_probs(probs, torch.tensor([[0.9, 0.7, 0.2]]))
    assert labels.tolist() == [[[255, 255, 255]]]  # strictly above


def views_pseudo_labels(probs_views, theta, prior):
    labels, confidence = pseudo_labels_in_reference(probs_views, theta, prior)
    return labels, confidence, *labels_to_views(labels, confidence, theta)


def test_pseudo_labels_fuse_views_threshold_and_cut_out_for_each_view():
    # 2 classes on 8x8; the reference says class 0 at 0.9 everywhere, the centre crop says class 1
    # at 0.9: over the overlap the fused map is 0.5/0.5, below the class-0 threshold
    # 0.9 * 0.75 * (1 - e^-1000) = 0.675, so the overlap is ignored and the rest is class 0.
    theta = affines(IDENTITY, CENTRE_HALF)
    ref = torch.stack([torch.full((8, 8), 0.9), torch.full((8, 8), 0.1)])
    crop = ref.flip(0)
    labels, confidence, view_labels, view_confidence = views_pseudo_labels(torch.stack([ref, crop]), theta, torch.ones(2))
    assert labels.shape == (1, 8, 8) and view_labels.shape == (2, 8, 8) and view_confidence.shape == (2, 8, 8)
    expected_ref = torch.zeros(8, 8, dtype=torch.int64)
    expected_ref[2:6, 2:6] = 255
    assert torch.equal(labels[0], expected_ref)
    assert torch.equal(view_labels[0], expected_ref)  # the reference view is the reference
    # the crop view shows exactly the overlap: ignored everywhere, at confidence 0.5
    assert (view_labels[1] == 255).all()
    assert torch.allclose(view_confidence[1, 1:7, 1:7], torch.full((6, 6), 0.5))


def test_agreeing_views_keep_their_labels():
    theta = affines(IDENTITY, FLIP)
    probs = torch.zeros(1, 3, 4, 6)
    probs[0, 2] = 0.8
    probs[0, 0] = 0.2
    views = warp_to_views(probs, theta)
    _, _, labels, confidence = views_pseudo_labels(views, theta, torch.full((3,), 0.5))
    assert (labels == 2).all()
    assert torch.allclose(confidence, torch.full((2, 4, 6), 0.8))


def test_labels_to_views_samples_labels_nearest_at_the_mapped_points():
    labels = torch.arange(64).reshape(1, 8, 8)  # every pixel its own label
    theta = affines(IDENTITY, CENTRE_HALF, FLIP)
    view_labels, view_conf = labels_to_views(labels, torch.ones(1, 8, 8), theta)
    assert torch.equal(view_labels[0], labels[0])
    assert torch.equal(view_labels[2], labels[0].flip(-1))
    # zoom 2x on the centre: view pixel (i, j) shows reference pixel (2 + i // 2, 2 + j // 2)
    rows = 2 + torch.arange(8) // 2
    assert torch.equal(view_labels[1], labels[0][rows][:, rows])
    assert set(view_labels.unique().tolist()) <= set(range(64))  # never a blend of two labels
    assert torch.allclose(view_conf, torch.ones(3, 8, 8))


def test_class_peaks_and_thresholds_from_peaks_compose_to_class_thresholds():
    probs = probs_1x2x1x3()
    peaks = class_peaks(probs)
    assert torch.allclose(peaks, torch.tensor([[0.9, 0.7, 0.0]]))
    prior = torch.tensor([2e-3, 1e-3, 0.5])
    assert torch.allclose(thresholds_from_peaks(peaks, prior), class_thresholds(probs, prior))
    with pytest.raises(ValueError):
        thresholds_from_peaks(peaks, torch.ones(2))


# ---------------------------------------------------------------------------------------------
# Class prior


def test_update_prior_moving_average_and_first_seen_jump():
    prior = torch.tensor([0.5, 1e-3, 1e-3, 0.2], dtype=torch.float32)
    # mean softmax per class over 2 pixels: [0.4, 0.3, 0.0005, 0.2995]
    probs = torch.tensor([[0.5, 0.3], [0.2, 0.4], [0.001, 0.0], [0.299, 0.3]]).view(1, 4, 1, 2)
    new = update_prior(prior, probs)
    mean = torch.tensor([0.4, 0.3, 0.0005, 0.2995])
    assert new[0].item() == pytest.approx(0.99 * 0.5 + 0.01 * 0.4, rel=1e-6)
    assert new[1].item() == pytest.approx(0.3, rel=1e-6)  # first seen: jumps to its mean
    assert new[2].item() == pytest.approx(0.99 * 1e-3 + 0.01 * 0.0005, rel=1e-5)  # not seen: decays
    assert new[3].item() == pytest.approx(0.99 * 0.2 + 0.01 * 0.2995, rel=1e-6)
    assert torch.equal(prior, torch.tensor([0.5, 1e-3, 1e-3, 0.2]))  # input untouched
    assert torch.allclose(probs.mean(dim=(0, 2, 3)), mean)


def test_initial_prior_counts_as_unseen():
    prior = initial_prior(3)
    assert torch.equal(prior, torch.full((3,), 1e-3))
    probs = torch.tensor([0.7, 0.3, 0.0]).view(1, 3, 1, 1)
    new = update_prior(prior, probs)
    assert new[:2].tolist() == pytest.approx([0.7, 0.3])
    # once moved, the ordinary rule applies
    assert update_prior(new, probs)[0].item() == pytest.approx(0.7, rel=1e-6)
    again = update_prior(new, torch.tensor([0.1, 0.9, 0.0]).view(1, 3, 1, 1))
    assert again[0].item() == pytest.approx(0.99 * 0.7 + 0.01 * 0.1, rel=1e-6)


# ---------------------------------------------------------------------------------------------
# Loss


def test_focal_confidence_ce_hand_value():
    # N=1, C=2, H=1, W=2. pixel 0: logits (0, 0) -> p=1/2, label 0; pixel 1: (0, ln 3) -> p1=3/4.
    logits = torch.tensor([[[[0.0, 0.0]], [[0.0, math.log(3.0)]]]], requires_grad=True)
    labels = torch.tensor([[[0, 1]]])
    confidence = torch.tensor([[[0.8, 0.4]]])
    prior = torch.tensor([0.5, 0.0])
    loss = focal_confidence_ce(logits, labels, confidence, prior)
    expected = (0.5**3 * 0.8 * math.log(2.0) + 1.0 * 0.4 * -math.log(0.75)) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    loss.backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0


def test_focal_confidence_ce_ignores_255_and_normalises_by_labelled_pixels():
    logits = torch.tensor([[[[0.0, 0.0]], [[0.0, math.log(3.0)]]]])
    confidence = torch.tensor([[[0.8, 0.4]]])
    prior = torch.zeros(2)
    loss = focal_confidence_ce(logits, torch.tensor([[[255, 1]]]), confidence, prior)
    assert loss.item() == pytest.approx(0.4 * -math.log(0.75), rel=1e-6)  # divided by 1, not 2
    nothing = focal_confidence_ce(logits, torch.full((1, 1, 2), 255), confidence, prior)
    assert nothing.item() == 0.0


def test_focal_confidence_ce_weights_each_pixel_by_its_own_confidence():
    # two images, one pixel each, same logits; only image 0 is confident
    logits = torch.tensor([[1.0, 0.0], [1.0, 0.0]]).view(2, 2, 1, 1)
    labels = torch.zeros(2, 1, 1, dtype=torch.int64)
    confidence = torch.tensor([1.0, 0.0]).view(2, 1, 1)
    prior = torch.zeros(2)
    nll = -math.log(math.e / (math.e + 1))
    loss = focal_confidence_ce(logits, labels, confidence, prior)
    assert loss.item() == pytest.approx(nll / 2, rel=1e-6)
    # the reference's broadcasting (B,1,H,W) * (B,H,W) -> (B,B,H,W) would give a different value
    per_pixel = torch.full((2, 1, 1), nll)
    buggy = (confidence.unsqueeze(1) * per_pixel).sum() / 2
    assert buggy.item() == pytest.approx(nll, rel=1e-6)
    assert abs(loss.item() - buggy.item()) > 0.1


def test_focal_confidence_ce_class_weight_follows_prior():
    logits = torch.zeros(1, 2, 1, 1)
    labels = torch.zeros(1, 1, 1, dtype=torch.int64)
    ones = torch.ones(1, 1, 1)
    common = focal_confidence_ce(logits, labels, ones, torch.tensor([0.9, 0.1]))
    rare = focal_confidence_ce(logits, labels, ones, torch.tensor([0.1, 0.9]))
    assert common.item() == pytest.approx(0.1**3 * math.log(2), rel=1e-5)
    assert rare.item() == pytest.approx(0.9**3 * math.log(2), rel=1e-5)


# ---------------------------------------------------------------------------------------------
# Photometric noise


def test_photometric_noise_is_deterministic_and_keeps_shape_and_range():
    images = torch.rand(3, 3, 12, 10, generator=torch.Generator().manual_seed(0))
    a = photometric_noise(images, np.random.default_rng(5))
    b = photometric_noise(images, np.random.default_rng(5))
    c = photometric_noise(images, np.random.default_rng(6))
    assert a.shape == images.shape and a.dtype == images.dtype
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)
    assert not torch.allclose(a, images)
    assert a.min() >= 0 and a.max() <= 1
    t1 = photometric_noise(images, torch.Generator().manual_seed(3))
    t2 = photometric_noise(images, torch.Generator().manual_seed(3))
    assert torch.equal(t1, t2)
    assert torch.equal(images, torch.rand(3, 3, 12, 10, generator=torch.Generator().manual_seed(0)))


def test_photometric_noise_greyscale_gives_equal_channels():
    images = torch.rand(2, 3, 6, 6, generator=torch.Generator().manual_seed(1))
    grey = photometric_noise(images, np.random.default_rng(0), grey_p=1.0)
    assert torch.allclose(grey[:, 0], grey[:, 1]) and torch.allclose(grey[:, 1], grey[:, 2])
    colour = photometric_noise(images, np.random.default_rng(0), grey_p=0.0)
    assert not torch.allclose(colour[:, 0], colour[:, 1])


def test_photometric_noise_without_jitter_blurs_towards_the_mean():
    image = torch.zeros(1, 3, 9, 9)
    image[..., 4, 4] = 1.0
    out = photometric_noise(
        image, np.random.default_rng(0), brightness=0, contrast=0, saturation=0, grey_p=0, sigma=(1.0, 1.0)
    )
    assert out[0, 0, 4, 4] < 1.0 and out[0, 0, 4, 5] > 0
    assert out[0, 0].sum().item() == pytest.approx(1.0, rel=1e-4)  # blur keeps mass away from borders
    assert torch.allclose(out[0, 0], out[0, 0].T, atol=1e-6)


# ---------------------------------------------------------------------------------------------
# Instance-guided refinement


def test_refine_with_instances_majority_and_untouched_unlabelled_instances():
    labels = np.array(
        [
            [13, 13, 14, 0, 255],
            [13, 255, 14, 0, 255],
            [8, 8, 8, 255, 255],
        ],
        dtype=np.uint8,
    )
    instances = np.array(
        [
            [5, 5, 5, 0, 9],
            [5, 5, 5, 0, 9],
            [0, 0, 0, 7, 9],
        ]
    )
    refined = refine_with_instances(labels, instances)
    expected = labels.copy()
    expected[instances == 5] = 13  # 3 x car vs 2 x truck; the ignored pixel is filled too
    assert refined.dtype == np.uint8
    np.testing.assert_array_equal(refined, expected)
    assert refined[2, 3] == 255 and (refined[:, 4] == 255).all()  # all-ignore instances untouched
    np.testing.assert_array_equal(labels[1], [13, 255, 14, 0, 255])  # input untouched


def test_refine_with_instances_int64_and_torch():
    labels = np.array([[11, 12, 12], [255, 3, 3]], dtype=np.int64)
    instances = np.array([[1, 1, 1], [1, 0, 2]])
    refined = refine_with_instances(labels, instances)
    assert refined.dtype == np.int64
    np.testing.assert_array_equal(refined, [[12, 12, 12], [12, 3, 3]])
    as_torch = refine_with_instances(torch.from_numpy(labels), torch.from_numpy(instances))
    assert torch.equal(as_torch, torch.from_numpy(refined))


def test_sample_instances_keeps_rounded_fraction_deterministically():
    instances = np.repeat(np.array([[0, 3, 4, 8, 10, 11, 20, 21]]), 2, axis=0)  # K = 7
    kept = sample_instances(instances, 0.3, np.random.default_rng(0))
    ids = set(np.unique(kept[kept > 0]).tolist())
    assert len(ids) == round(0.3 * 7) == 2
    assert ids <= {3, 4, 8, 10, 11, 20, 21}
    # kept instances keep all their pixels, the others become 0
    for i in ids:
        assert (kept[instances == i] == i).all()
    assert (kept[~np.isin(instances, list(ids))] == 0).all()
    np.testing.assert_array_equal(kept, sample_instances(instances, 0.3, np.random.default_rng(0)))
    assert kept.dtype == instances.dtype
    np.testing.assert_array_equal(sample_instances(instances, 1.0, np.random.default_rng(1)), instances)
    assert (sample_instances(instances, 0.0, np.random.default_rng(1)) == 0).all()
    assert len(np.unique(sample_instances(instances, 0.5, np.random.default_rng(2)))) - 1 == 4  # 3.5 -> 4
    with pytest.raises(ValueError):
        sample_instances(instances, 1.5, np.random.default_rng(0))
