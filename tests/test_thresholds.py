"""SAC pseudo-labels (:mod:`selfpanoptic.pseudo.thresholds`): class thresholds, fused labels, class prior."""

from __future__ import annotations

import math

import pytest
import torch

from selfpanoptic.augment.views import labels_to_views, warp_to_views
from selfpanoptic.pseudo.semantic import fuse_and_threshold
from selfpanoptic.pseudo.thresholds import (
    ClassPrior,
    align_to_reference,
    alignment_weights,
    class_peaks,
    class_quantiles,
    class_thresholds,
    initial_prior,
    pseudo_labels_from_probs,
    thresholds_from_peaks,
    update_prior,
)

from conftest import CENTRE_HALF, FLIP, IDENTITY, affines


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
    labels, confidence, _, _ = fuse_and_threshold(probs_views, theta, prior)
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


def test_class_peaks_and_thresholds_from_peaks_compose_to_class_thresholds():
    probs = probs_1x2x1x3()
    peaks = class_peaks(probs)
    assert torch.allclose(peaks, torch.tensor([[0.9, 0.7, 0.0]]))
    prior = torch.tensor([2e-3, 1e-3, 0.5])
    assert torch.allclose(thresholds_from_peaks(peaks, prior), class_thresholds(probs, prior))
    with pytest.raises(ValueError):
        thresholds_from_peaks(peaks, torch.ones(2))


def test_class_thresholds_reject_a_wrong_prior_and_non_float_maps():
    with pytest.raises(ValueError, match=r"prior must be \(3,\)"):
        class_thresholds(probs_1x2x1x3(), torch.ones(2))
    with pytest.raises(ValueError, match="floating-point"):
        class_thresholds(torch.ones(1, 3, 1, 3, dtype=torch.int64), torch.ones(3))
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        class_thresholds(torch.ones(3, 1, 3), torch.ones(3))


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


def test_class_prior_checkpoint_round_trip_copies_and_casts_to_float32():
    value = torch.tensor([0.5, 1e-3], dtype=torch.float64)
    prior = ClassPrior(value)
    assert prior.value.dtype == torch.float32 and torch.equal(prior.value, value.float())
    value[0] = 0.0
    assert prior.value[0].item() == 0.5  # a copy, not a view of the input
    state = prior.state_dict()
    prior.value[1] = 0.25
    assert state["value"][1].item() == pytest.approx(1e-3)  # the state is a copy too
    restored = ClassPrior(torch.zeros(2))
    restored.load_state_dict({"value": torch.tensor([0.1, 0.2], dtype=torch.float64)})
    assert restored.value.dtype == torch.float32
    assert torch.equal(restored.value, torch.tensor([0.1, 0.2]))


def test_class_quantiles_hand_values_valid_pixels_and_absent_classes():
    # image 0: class 0 at 0.9, 0.6 and 0.8; class 1 at 0.7; class 2 nowhere
    p0 = torch.tensor([0.9, 0.6, 0.3, 0.8])
    probs = torch.stack([p0, 1 - p0, torch.zeros(4)])[None, :, None, :]
    # class 0 sorted 0.6, 0.8, 0.9: the median is 0.8; class 1 has one pixel (0.7)
    torch.testing.assert_close(class_quantiles(probs, 0.5), torch.tensor([[0.8, 0.7, 0.0]]))
    torch.testing.assert_close(class_quantiles(probs, 0.0), torch.tensor([[0.6, 0.7, 0.0]]))
    torch.testing.assert_close(class_quantiles(probs, 1.0), torch.tensor([[0.9, 0.7, 0.0]]))
    # position floor(0.4 * 2) = 0: the lower order statistic
    torch.testing.assert_close(class_quantiles(probs, 0.4), torch.tensor([[0.6, 0.7, 0.0]]))
    # the 0.9 pixel does not count: class 0 is 0.6, 0.8, its median (lower) 0.6
    valid = torch.tensor([[[False, True, True, True]]])
    torch.testing.assert_close(class_quantiles(probs, 0.5, valid), torch.tensor([[0.6, 0.7, 0.0]]))
    with pytest.raises(ValueError, match="quantile"):
        class_quantiles(probs, 1.5)


def test_class_quantile_keeps_the_most_confident_share_of_every_class():
    p0 = torch.tensor([0.9, 0.6, 0.3, 0.8])
    probs = torch.stack([p0, 1 - p0, torch.zeros(4)])[None, :, None, :]
    prior = torch.full((3,), 0.5)
    sac = class_thresholds(probs, prior, ratio=0.5, floor=0.0)
    cbst = class_thresholds(probs, prior, ratio=0.5, floor=0.0, quantile=0.5)
    torch.testing.assert_close(cbst, torch.maximum(sac, class_quantiles(probs, 0.5)))
    labels, _ = pseudo_labels_from_probs(probs, cbst)
    # class 0 keeps 0.9 only (0.8 is its median, not above it); class 1's single pixel is its own median
    assert labels.flatten().tolist() == [0, 255, 255, 255]


def test_alignment_weights_lift_only_classes_below_their_reference_share():
    reference = torch.tensor([0.5, 0.25, 0.25])
    prior = torch.tensor([0.7, 0.25, 0.05])  # class 0 above, 1 at, 2 at a fifth of its share
    torch.testing.assert_close(alignment_weights(reference, prior, 1.0), torch.tensor([1.0, 1.0, 5.0]))
    torch.testing.assert_close(alignment_weights(reference, prior, 0.5), torch.tensor([1.0, 1.0, 5.0 ** 0.5]))
    torch.testing.assert_close(alignment_weights(reference, prior, 0.0), torch.ones(3))
    # a prior of 0 is read as PRIOR_INITIAL: a finite lift
    assert torch.isfinite(alignment_weights(reference, torch.tensor([1.0, 0.0, 0.0]), 1.0)).all()
    with pytest.raises(ValueError):
        alignment_weights(reference, prior[:2], 1.0)
    with pytest.raises(ValueError):
        alignment_weights(reference, prior, -1.0)


def test_align_to_reference_reweights_and_renormalises_and_can_flip_the_argmax():
    probs = torch.tensor([0.6, 0.2, 0.2, 0.0, 0.0, 0.0]).view(2, 3, 1, 1).permute(1, 0, 2, 3).reshape(1, 3, 1, 2)
    aligned = align_to_reference(probs, torch.tensor([1.0, 1.0, 5.0]))
    # pixel 0: (0.6, 0.2, 1.0) / 1.8; pixel 1 had no probability anywhere and stays 0
    torch.testing.assert_close(aligned[0, :, 0, 0], torch.tensor([1 / 3, 1 / 9, 5 / 9]))
    assert aligned[0, :, 0, 1].abs().sum() == 0
    assert aligned[0, :, 0, 0].argmax() == 2
