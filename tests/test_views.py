"""View geometry (:mod:`selfpanoptic.augment.views`): random views, cutting views out, warping back."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from selfpanoptic.augment.views import (
    labels_to_views,
    make_views,
    random_view_affines,
    warp_to_reference,
    warp_to_views,
)

from conftest import CENTRE_HALF, FLIP, IDENTITY, affines


def ramp(h: int, w: int, channels: int = 1) -> torch.Tensor:
    """(1, C, H, W) map linear in the normalised pixel-centre coordinates (bilinear-exact)."""
    ys = (2 * torch.arange(h) + 1) / h - 1
    xs = (2 * torch.arange(w) + 1) / w - 1
    base = xs[None, :] + 2 * ys[:, None]
    return torch.stack([base * (k + 1) + k for k in range(channels)])[None]


def centres(n: int) -> torch.Tensor:
    return (2 * torch.arange(n) + 1) / n - 1


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
