"""Clustering a batch of images in one go gives, image by image, what clustering it alone gives."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from selfpanoptic.clustering import (
    climb,
    instances_from_embeddings,
    instances_from_embeddings_batch,
    mean_shift,
    merge_close_clusters,
)
from selfpanoptic.clustering import cover
from selfpanoptic.clustering.cover import _greedy_cover
from selfpanoptic.pseudo.masks import mean_per_instance, pseudo_instances, pseudo_instances_batch

CLASSES = (11, 13, 14)


def per_class_reference(emb: np.ndarray, semantic: np.ndarray, thing_classes, bandwidth=0.5, delta_d=2.0,
                        min_size=20) -> tuple[np.ndarray, dict[int, int]]:
    """One image, class by class with the public one-set functions: the numbering convention spelled out."""
    instances = np.zeros(semantic.shape, dtype=np.int32)
    classes, next_id = {}, 1
    for class_id in thing_classes:
        where = np.flatnonzero(semantic == class_id)
        if len(where) == 0:
            continue
        points = emb.reshape(emb.shape[0], -1)[:, where].T
        labels = merge_close_clusters(points, mean_shift(points, bandwidth), delta_d)
        for k in np.flatnonzero(np.bincount(labels) >= min_size):  # acceptance order, largest first
            instances.reshape(-1)[where[labels == k]] = next_id
            classes[next_id] = class_id
            next_id += 1
    return instances, classes


def scene(rng: np.random.Generator, height: int = 24, width: int = 32, dim: int = 8,
          spread: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Blocky stuff and rectangles of the three thing classes, each a tight blob of embeddings."""
    semantic = np.kron(rng.choice([0, 8, 10], size=(height // 8, width // 8)), np.ones((8, 8), np.uint8))
    semantic = semantic.astype(np.uint8)
    emb = rng.normal(0.0, 1.0, (dim, height, width)).astype(np.float32)
    for i in range(5):
        class_id = CLASSES[i % 3]
        h, w = int(rng.integers(4, 10)), int(rng.integers(4, 12))
        y, x = int(rng.integers(0, height - h)), int(rng.integers(0, width - w))
        mean = np.eye(dim)[i] * 6.0 * (1 + i % 2) + 0.1  # off the bin grid: seeds have to climb
        semantic[y:y + h, x:x + w] = class_id
        emb[:, y:y + h, x:x + w] = mean[:, None, None] + rng.normal(0.0, spread, (dim, h, w))
    return emb, semantic


def batch_of(scenes):
    return np.stack([s[0] for s in scenes]), np.stack([s[1] for s in scenes])


def assert_same(found, expected):
    assert len(found) == len(expected)
    for (instances, classes), (ref_instances, ref_classes) in zip(found, expected):
        assert instances.dtype == np.int32 and instances.shape == ref_instances.shape
        np.testing.assert_array_equal(instances, ref_instances)
        assert classes == ref_classes


# --- equivalence ----------------------------------------------------------------------------------


@pytest.mark.parametrize("spread", [0.05, 0.3])
def test_batch_equals_image_by_image_and_class_by_class(spread):
    rng = np.random.default_rng(0)
    emb, semantic = batch_of([scene(rng, spread=spread) for _ in range(4)])
    found = instances_from_embeddings_batch(emb, semantic, thing_classes=CLASSES, min_size=5)
    assert sum(len(c) for _, c in found) >= 8  # several instances, several classes per image
    assert_same(found, [per_class_reference(emb[b], semantic[b], CLASSES, min_size=5) for b in range(4)])
    assert_same(found, [instances_from_embeddings(emb[b], semantic[b], CLASSES, min_size=5) for b in range(4)])
    # torch input (and a torch semantic map) gives the same
    assert_same(instances_from_embeddings_batch(torch.from_numpy(emb), torch.from_numpy(semantic), CLASSES,
                                                min_size=5), found)


def test_classes_are_numbered_in_the_order_given():
    rng = np.random.default_rng(1)
    emb, semantic = batch_of([scene(rng) for _ in range(2)])
    found = instances_from_embeddings_batch(emb, semantic, thing_classes=(14, 11), min_size=5)
    for b, (instances, classes) in enumerate(found):
        assert list(classes.values()) == sorted(classes.values(), key=(14, 11).index)  # 14 before 11
        assert not instances[semantic[b] == 13].any()  # not a thing class here
    assert_same(found, [per_class_reference(emb[b], semantic[b], (14, 11), min_size=5) for b in range(2)])


def test_groups_never_merge_across_images_or_classes_even_with_equal_embeddings():
    # every object of every image sits on the same embedding: only images and classes tell them apart
    dim, height, width = 8, 4, 12
    emb = np.zeros((3, dim, height, width), np.float32)
    semantic = np.zeros((3, height, width), np.uint8)
    semantic[:, :, :4] = 11
    semantic[:, :, 4:8] = 13
    semantic[2, :, 8:] = 14
    found = instances_from_embeddings_batch(emb, semantic, thing_classes=CLASSES, min_size=1)
    for b in range(2):
        expected = np.zeros((height, width), np.int32)
        expected[:, :4], expected[:, 4:8] = 1, 2
        np.testing.assert_array_equal(found[b][0], expected)
        assert found[b][1] == {1: 11, 2: 13}
    assert found[2][1] == {1: 11, 2: 13, 3: 14}
    np.testing.assert_array_equal(found[2][0][0], [1] * 4 + [2] * 4 + [3] * 4)


def test_empty_images_classes_and_batches():
    rng = np.random.default_rng(2)
    emb, semantic = batch_of([scene(rng) for _ in range(3)])
    semantic[1] = 0  # no thing at all
    semantic[2][semantic[2] == 13] = 8  # one class missing
    found = instances_from_embeddings_batch(emb, semantic, thing_classes=CLASSES, min_size=5)
    assert found[1][1] == {} and not found[1][0].any()
    assert 13 not in found[2][1].values()
    assert_same(found, [per_class_reference(emb[b], semantic[b], CLASSES, min_size=5) for b in range(3)])
    nothing = instances_from_embeddings_batch(emb, np.zeros_like(semantic), CLASSES)
    assert all(classes == {} and instances.dtype == np.int32 and not instances.any() for instances, classes in nothing)
    assert instances_from_embeddings_batch(emb[:0], semantic[:0], CLASSES) == []
    for instances, classes in instances_from_embeddings_batch(emb, semantic, thing_classes=()):
        assert classes == {} and not instances.any()


def test_min_size_by_hand():
    # one row per image: class 11 in clusters of 5 and 3 pixels (and 2 on image 1), embeddings far apart
    emb = np.zeros((2, 2, 1, 10), np.float32)
    emb[:, 0, 0, 5:8] = 10.0
    emb[1, 1, 0, 8:] = 10.0
    semantic = np.full((2, 1, 10), 11, np.uint8)
    semantic[0, 0, 8:] = 0
    found = instances_from_embeddings_batch(emb, semantic, thing_classes=(11,), min_size=3)
    np.testing.assert_array_equal(found[0][0][0], [1] * 5 + [2] * 3 + [0] * 2)
    np.testing.assert_array_equal(found[1][0][0], [1] * 5 + [2] * 3 + [0] * 2)  # the 2-pixel cluster dropped
    assert found[0][1] == found[1][1] == {1: 11, 2: 11}
    found = instances_from_embeddings_batch(emb, semantic, thing_classes=(11,), min_size=4)
    np.testing.assert_array_equal(found[1][0][0], [1] * 5 + [0] * 5)


def test_a_group_no_seed_reaches_falls_back_alone():
    # image 0: the points of test_mean_shift_falls_back_to_point_seeds_when_no_seed_reaches_a_point
    # (no bin seed within reach of them); image 1: two ordinary clusters, of 4 and 2 pixels
    emb = np.zeros((2, 8, 1, 6), np.float32)
    emb[0, :, 0, :3] = 0.24
    emb[0, 0, 0, 1], emb[0, 0, 0, 2] = 0.2, 0.22
    emb[1, 0, 0, 4:] = 5.0
    semantic = np.zeros((2, 1, 6), np.uint8)
    semantic[:, 0, :3] = 11
    semantic[1, 0, 3:] = 11
    found = instances_from_embeddings_batch(emb, semantic, thing_classes=(11,), min_size=1)
    np.testing.assert_array_equal(found[0][0][0], [1, 1, 1, 0, 0, 0])
    np.testing.assert_array_equal(found[1][0][0], [1, 1, 1, 1, 2, 2])


@pytest.mark.parametrize("spread", [0.05, 0.3])
def test_small_seed_blocks_and_waiting_seeds_change_nothing(monkeypatch, spread):
    """Blocks holding several groups, and the GPU's look every few iterations, on the CPU."""
    rng = np.random.default_rng(3)
    emb, semantic = batch_of([scene(rng, spread=spread) for _ in range(3)])
    expected = instances_from_embeddings_batch(emb, semantic, CLASSES, min_size=5)
    monkeypatch.setattr(climb, "SEED_BLOCK", 16)
    monkeypatch.setattr(climb, "PACK_GROUPS", True)  # groups share blocks, as on a GPU
    assert_same(instances_from_embeddings_batch(emb, semantic, CLASSES, min_size=5), expected)
    monkeypatch.setattr(climb, "CHECK_EVERY", 5)
    monkeypatch.setattr(climb, "CANDIDATE_MARGIN", 0.1)  # seeds leave their candidates often: they wait
    monkeypatch.setattr(cover, "GROUP_COVER_CHECK", 3)
    assert_same(instances_from_embeddings_batch(emb, semantic, CLASSES, min_size=5), expected)
    monkeypatch.setattr(climb, "SEED_BLOCK_ELEMENTS", 1 << 18)  # blocks of many groups, as on a GPU
    assert_same(instances_from_embeddings_batch(emb, semantic, CLASSES, min_size=5), expected)


def test_blocks_pack_small_groups_and_cut_large_ones():
    group = torch.tensor([0] * 5 + [1] * 7 + [3] * 20 + [4] * 3)  # seeds, group by group
    points = [10, 10, 0, 40, 5]  # points of every group
    # at most 16 seeds: groups 0 and 1 share a block, group 3 is cut, its rest shares with group 4
    assert climb._blocks(35, 16, group, points) == [(0, 12, True), (12, 28, False), (28, 35, True)]
    # or more while seeds x points <= 1000: group 3 whole (20 x 40), but not with group 4 (23 x 45)
    assert climb._blocks(35, 16, group, points, 1000) == [(0, 12, True), (12, 32, False), (32, 35, False)]
    assert climb._blocks(35, 16, None) == [(0, 16, False), (16, 32, False), (32, 35, False)]
    # without packing every group has blocks of its own
    assert climb._blocks(35, 16, group, points, pack=False) == [(0, 5, False), (5, 12, False), (12, 28, False),
                                                                 (28, 32, False), (32, 35, False)]


@pytest.mark.parametrize("steps", [1, 3])
def test_greedy_cover_of_groups_is_each_group_alone(monkeypatch, steps):
    monkeypatch.setattr(cover, "GROUP_COVER_CHECK", steps)  # 3: steps between looks, as on a GPU
    rng = np.random.default_rng(4)
    points = torch.from_numpy(rng.uniform(0.0, 3.0, (60, 2)))
    group = torch.from_numpy(rng.integers(0, 3, 60))
    accepted, owner = _greedy_cover(points, 0.8, group)
    for g in range(3):
        members = torch.nonzero(group == g).reshape(-1)
        alone_accepted, alone_owner = _greedy_cover(points[members], 0.8)
        # the same points accepted, each point owned by the same accepted point
        assert members[alone_accepted].tolist() == [a for a in accepted.tolist() if group[a] == g]
        assert accepted[owner[members]].tolist() == members[alone_accepted[alone_owner]].tolist()


# --- pseudo instances -----------------------------------------------------------------------------


def pseudo_reference(emb, semantic, confidence, thing_classes, min_size, min_confidence):
    """One image: instances, then the confidence filter as mean_per_instance computes it."""
    instances, classes = per_class_reference(emb, semantic, thing_classes, min_size=min_size)
    means = mean_per_instance(confidence.astype(np.float32), instances)
    kept = [k for k in sorted(classes) if means[k] >= min_confidence]
    out = np.zeros_like(instances)
    for new, old in enumerate(kept, start=1):
        out[instances == old] = new
    return out, {new: classes[old] for new, old in enumerate(kept, start=1)}


def test_pseudo_batch_equals_image_by_image():
    rng = np.random.default_rng(5)
    emb, semantic = batch_of([scene(rng) for _ in range(4)])
    confidence = rng.uniform(0.2, 1.0, semantic.shape).astype(np.float32)
    for min_confidence in (0.0, 0.55, 0.6, 2.0):
        found = pseudo_instances_batch(torch.from_numpy(emb), semantic, confidence, list(CLASSES), 0.5, 2.0, 5,
                                       min_confidence)
        expected = [pseudo_reference(emb[b], semantic[b], confidence[b], CLASSES, 5, min_confidence) for b in range(4)]
        assert_same(found, expected)
        assert_same([pseudo_instances(torch.from_numpy(emb[b]), semantic[b], confidence[b], list(CLASSES), 0.5, 2.0,
                                      5, min_confidence) for b in range(4)], expected)
    # torch semantic and a float16 torch confidence, as the training step has them
    assert_same(pseudo_instances_batch(torch.from_numpy(emb), torch.from_numpy(semantic),
                                       torch.from_numpy(confidence).half(), list(CLASSES), 0.5, 2.0, 5, 0.55),
                [pseudo_reference(emb[b], semantic[b], confidence[b].astype(np.float16), CLASSES, 5, 0.55)
                 for b in range(4)])


def test_pseudo_min_confidence_by_hand():
    # image 0: class 11 clusters of 5 px (conf 0.9) and 3 px (conf 0.4), class 13 one of 2 px (conf 0.6)
    # image 1: one class-11 cluster of 4 px with confidences 0.5, 0.5, 0.5, 0.7 (mean 0.55)
    emb = np.zeros((2, 2, 1, 10), np.float32)
    emb[0, 0, 0, 5:8] = 10.0
    semantic = np.zeros((2, 1, 10), np.uint8)
    semantic[0, 0, :8] = 11
    semantic[0, 0, 8:] = 13
    semantic[1, 0, :4] = 11
    confidence = np.zeros((2, 1, 10), np.float32)
    confidence[0, 0] = [0.9] * 5 + [0.4] * 3 + [0.6] * 2
    confidence[1, 0, :4] = [0.5, 0.5, 0.5, 0.7]
    found = pseudo_instances_batch(torch.from_numpy(emb), semantic, confidence, [11, 13], 0.5, 2.0, 2, 0.5)
    # image 0: ids 1 (0.9, kept -> 1), 2 (0.4, dropped), 3 (0.6, kept -> 2); image 1: id 1 (0.55, kept)
    np.testing.assert_array_equal(found[0][0][0], [1] * 5 + [0] * 3 + [2] * 2)
    assert found[0][1] == {1: 11, 2: 13}
    np.testing.assert_array_equal(found[1][0][0], [1] * 4 + [0] * 6)
    assert found[1][1] == {1: 11}
    strict = pseudo_instances_batch(torch.from_numpy(emb), semantic, confidence, [11, 13], 0.5, 2.0, 2, 0.6)
    np.testing.assert_array_equal(strict[0][0][0], [1] * 5 + [0] * 3 + [2] * 2)  # 0.6 >= 0.6: kept
    assert strict[1][1] == {} and not strict[1][0].any()
    bigger = pseudo_instances_batch(torch.from_numpy(emb), semantic, confidence, [11, 13], 0.5, 2.0, 4, 0.0)
    np.testing.assert_array_equal(bigger[0][0][0], [1] * 5 + [0] * 5)  # min_size 4 drops 3 px and 2 px
    np.testing.assert_array_equal(bigger[1][0][0], [1] * 4 + [0] * 6)


def test_bad_batch_shapes_are_refused():
    with pytest.raises(ValueError):
        instances_from_embeddings_batch(np.zeros((8, 3, 4), np.float32), np.zeros((3, 4), np.uint8))
    with pytest.raises(ValueError):
        instances_from_embeddings_batch(np.zeros((2, 8, 3, 4), np.float32), np.zeros((1, 3, 4), np.uint8))
    with pytest.raises(ValueError):
        instances_from_embeddings_batch(np.full((1, 2, 1, 2), np.nan, np.float32), np.full((1, 1, 2), 11, np.uint8))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_batch_equals_cpu_batch():
    rng = np.random.default_rng(6)
    emb, semantic = batch_of([scene(rng, spread=spread) for spread in (0.05, 0.3, 0.05, 0.3)])
    confidence = rng.uniform(0.2, 1.0, semantic.shape).astype(np.float32)
    expected = instances_from_embeddings_batch(emb, semantic, CLASSES, min_size=5)
    assert_same(instances_from_embeddings_batch(torch.from_numpy(emb).cuda(), torch.from_numpy(semantic).cuda(),
                                                CLASSES, min_size=5), expected)
    assert_same(pseudo_instances_batch(torch.from_numpy(emb).cuda(), torch.from_numpy(semantic).cuda(),
                                       torch.from_numpy(confidence).cuda(), list(CLASSES), 0.5, 2.0, 5, 0.55),
                pseudo_instances_batch(torch.from_numpy(emb), semantic, confidence, list(CLASSES), 0.5, 2.0, 5, 0.55))
