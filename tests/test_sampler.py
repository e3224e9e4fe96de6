"""The one batch sampler of the training steps (selfpanoptic.train.data.sample_crops): which
images, which windows, which flips, in which order the generator is drawn from."""

from __future__ import annotations

import numpy as np
import pytest

from selfpanoptic.train.data import choose_images, sample_crops

# three 2x3 "images" (one channel) and label maps: pixel value = 10 * image + 3 * row + column
IMAGES = np.array([[[10 * k + 3 * r + c for c in range(3)] for r in range(2)] for k in range(3)], dtype=np.uint8)
LABELS = IMAGES + 100


def read(i: int) -> list[np.ndarray]:
    return [IMAGES[i][..., None], LABELS[i]]


def test_crops_follow_the_documented_draws_of_the_generator():
    """Replay of the draws by hand: indices (without replacement: 3 images >= 2), then per image
    top, left, flip; the labels get the image's window."""
    chosen, (images, labels) = sample_crops(np.random.default_rng(0), np.arange(3), 2, read, (1, 2), hflip=True)
    rng = np.random.default_rng(0)
    expected_chosen = rng.choice(np.arange(3), size=2, replace=False)
    assert np.array_equal(chosen, expected_chosen)
    expected_images, expected_labels = [], []
    for i in expected_chosen:
        top, left = int(rng.integers(0, 2)), int(rng.integers(0, 2))  # 2 rows - 1 + 1, 3 columns - 2 + 1
        flip = rng.random() < 0.5
        window = IMAGES[i, top, left:left + 2]
        expected_images.append((window[::-1] if flip else window)[None, :, None])
        expected_labels.append((window[::-1] if flip else window)[None] + 100)
    assert images.shape == (2, 1, 2, 1) and images.dtype == np.uint8 and labels.dtype == np.uint8
    assert np.array_equal(images, np.stack(expected_images))
    assert np.array_equal(labels, np.stack(expected_labels))


def test_a_literal_batch_of_seed_0():
    """The same with the numbers written out (PCG64, seed 0): images 1 and 2; image 1's window at
    row 0, columns 0-1, flipped (draw 0.017 < 0.5); image 2's at row 0, columns 0-1, not flipped (0.913)."""
    chosen, (images, labels) = sample_crops(np.random.default_rng(0), np.arange(3), 2, read, (1, 2), hflip=True)
    assert chosen.tolist() == [1, 2]
    assert images[..., 0].tolist() == [[[11, 10]], [[20, 21]]]
    assert labels.tolist() == [[[111, 110]], [[120, 121]]]


def test_no_flip_draw_without_hflip_and_no_index_draw_without_shuffle():
    rng = np.random.default_rng(5)
    chosen, (images, _) = sample_crops(rng, np.array([2, 0]), 99, read, (2, 3), hflip=False, shuffle=False)
    assert chosen.tolist() == [2, 0]
    assert np.array_equal(images[..., 0], IMAGES[[2, 0]])  # whole images: the only window, never flipped
    replay = np.random.default_rng(5)
    for _ in range(2):
        replay.integers(0, 1), replay.integers(0, 1)  # top and left, one choice each
    assert rng.random() == replay.random()  # nothing else was drawn


def test_probabilities_draw_with_replacement_and_jitter_draws_after_the_crop():
    p = np.array([0.0, 0.0, 1.0])
    chosen, (images, _) = sample_crops(np.random.default_rng(1), np.arange(3), 4, read, (2, 3), hflip=False,
                                       probabilities=p)
    assert chosen.tolist() == [2, 2, 2, 2]  # with replacement: more draws than images
    assert np.array_equal(images[..., 0], np.stack([IMAGES[2]] * 4))
    rng, replay = np.random.default_rng(1), np.random.default_rng(1)
    rgb = lambda i: [np.repeat(IMAGES[i][..., None], 3, axis=2)]  # noqa: E731
    sample_crops(rng, np.arange(3), 1, rgb, (2, 3), hflip=False, jitter=0.5)
    replay.choice(np.arange(3), size=1, replace=False)
    replay.integers(0, 1), replay.integers(0, 1)
    replay.uniform(-0.5, 0.5), replay.uniform(-0.5, 0.5), replay.uniform(-0.25, 0.25, size=3)  # colour_jitter
    assert rng.random() == replay.random()


@pytest.mark.parametrize("size,replace", [(2, False), (3, False), (4, True)])
def test_choose_images_replaces_only_when_the_population_is_too_small(size, replace):
    chosen = choose_images(np.random.default_rng(3), np.arange(3), size)
    assert np.array_equal(chosen, np.random.default_rng(3).choice(np.arange(3), size=size, replace=replace))
    if not replace:
        assert len(set(chosen.tolist())) == size
