"""Photometric noise of the student's views (:mod:`selfpanoptic.augment.photometric`)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from selfpanoptic.augment.photometric import photometric_noise


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
