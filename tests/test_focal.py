"""The focal, confidence-weighted cross-entropy of SAC (:mod:`selfpanoptic.losses.focal`)."""

from __future__ import annotations

import math

import pytest
import torch

from selfpanoptic.losses.focal import focal_confidence_ce


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
