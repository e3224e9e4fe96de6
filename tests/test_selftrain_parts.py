"""Pure pieces of self-training: rotation consistency, pseudo instance masks, pseudo-label grading."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from selfpanoptic.augment.views import rotate_maps, rotation_affines
from selfpanoptic.config import guidance_mode
from selfpanoptic.losses.consistency import embedding_consistency_loss, sample_anchors
from selfpanoptic.pseudo.grading import match_instances, precision, semantic_grade_counts
from selfpanoptic.pseudo.masks import mean_per_instance, pseudo_instances

# ---------------------------------------------------------------------------------------------
# Rotation consistency


def test_rotation_matrices_hand_values_and_inverse():
    theta = rotation_affines([0.0, 90.0], 4, 8)
    assert torch.allclose(theta[0], torch.tensor([[1.0, 0, 0], [0, 1.0, 0]]))
    # 90 degrees on a 4x8 image: [[0, -h/w, 0], [w/h, 0, 0]]
    assert torch.allclose(theta[1], torch.tensor([[0.0, -0.5, 0], [2.0, 0, 0]]), atol=1e-6)
    both = rotation_affines([37.0], 6, 10)[0, :, :2] @ rotation_affines([-37.0], 6, 10)[0, :, :2]
    assert torch.allclose(both, torch.eye(2), atol=1e-6)


def test_rotating_by_180_degrees_turns_the_image_around():
    maps = torch.arange(24, dtype=torch.float32).reshape(1, 1, 4, 6)
    rotated, inside = rotate_maps(maps, rotation_affines([180.0], 4, 6))
    assert torch.allclose(rotated, maps.flip(-1).flip(-2), atol=1e-4)
    assert inside.all()


def test_rotating_out_and_back_is_the_identity_where_both_saw_the_pixel():
    maps = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    angles = np.array([30.0, 135.0])
    rotated, _ = rotate_maps(maps, rotation_affines(angles, 16, 16))
    back, inside = rotate_maps(rotated, rotation_affines(-angles, 16, 16))
    assert inside[:, 8, 8].all() and not inside.all()  # the centre survives, corners do not
    # bilinear twice blurs; a constant map comes back exactly where it was seen
    ones = torch.ones(1, 1, 16, 16)
    r, _ = rotate_maps(ones, rotation_affines([45.0], 16, 16))
    b, seen = rotate_maps(r, rotation_affines([-45.0], 16, 16))
    core = seen[0] & (b[0, 0] > 0)
    assert torch.allclose(b[0, 0][4:12, 4:12], torch.ones(8, 8), atol=1e-5)
    assert core[4:12, 4:12].all()


def test_consistency_loss_is_zero_for_identical_embeddings_and_positive_otherwise():
    gen = torch.Generator().manual_seed(1)
    emb = torch.randn(2, 4, 6, 8, generator=gen)
    valid = torch.ones(2, 6, 8, dtype=torch.bool)
    anchors = sample_anchors(valid, 5, np.random.default_rng(0))
    assert [len(a) for a in anchors] == [5, 5]
    assert embedding_consistency_loss(emb, emb.clone(), valid, anchors).item() == pytest.approx(0.0, abs=1e-6)
    other = torch.randn(2, 4, 6, 8, generator=gen)
    student = emb.clone().requires_grad_(True)
    loss = embedding_consistency_loss(student, other, valid, anchors)
    assert 0.0 < loss.item() <= 1.0
    loss.backward()
    assert student.grad is not None and student.grad.abs().sum() > 0


def test_consistency_loss_hand_value_and_valid_mask():
    # 1-D embeddings on 1x3 pixels: student [0, 0, 10], teacher [0, 10, 10]; anchor pixel 0.
    # student mask p = [1, 1, ~0], teacher q = [1, ~0, ~0]: dice = 2 * 1 / (2 + 1) = 2/3
    student = torch.tensor([0.0, 0.0, 10.0]).reshape(1, 1, 1, 3)
    teacher = torch.tensor([0.0, 10.0, 10.0]).reshape(1, 1, 1, 3)
    valid = torch.ones(1, 1, 3, dtype=torch.bool)
    loss = embedding_consistency_loss(student, teacher, valid, [np.array([0])])
    assert loss.item() == pytest.approx(1 - 2 / 3, abs=1e-5)
    valid[0, 0, 1] = False  # the disagreeing pixel unseen: perfect agreement
    assert embedding_consistency_loss(student, teacher, valid, [np.array([0])]).item() == pytest.approx(0.0, abs=1e-5)


def test_sample_anchors_only_from_valid_pixels_and_none_when_empty():
    valid = torch.zeros(2, 3, 3, dtype=torch.bool)
    valid[0, 1, 2] = True
    anchors = sample_anchors(valid, 4, np.random.default_rng(0))
    assert anchors[0].tolist() == [5] and len(anchors[1]) == 0
    emb = torch.zeros(2, 2, 3, 3, requires_grad=True)
    assert embedding_consistency_loss(emb, emb.detach(), valid, [anchors[1], anchors[1]]).item() == 0.0


# ---------------------------------------------------------------------------------------------
# Pseudo instance masks


def two_blobs() -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    """2-D embeddings of a 4x6 image: class 13 (car) on columns 0-4 with two instances far apart
    (columns 0-2 and 3-4), road on column 5; confidence 0.9 on the first car, 0.6 on the second."""
    emb = torch.zeros(2, 4, 6)
    emb[0, :, 3:] = 5.0
    semantic = np.full((4, 6), 13, dtype=np.uint8)
    semantic[:, 5] = 0
    confidence = np.full((4, 6), 0.9, dtype=np.float32)
    confidence[:, 3:5] = 0.6
    return emb, semantic, confidence


def test_mean_per_instance_hand_values():
    values = np.array([[1.0, 3.0, 5.0], [0.0, 2.0, 7.0]])
    instances = np.array([[1, 1, 2], [0, 4, 4]])
    assert mean_per_instance(values, instances) == {1: 2.0, 2: 5.0, 4: 4.5}
    assert mean_per_instance(values, np.zeros((2, 3), dtype=int)) == {}


def test_pseudo_instances_split_by_embedding_inside_the_class_mask():
    emb, semantic, confidence = two_blobs()
    instances, classes = pseudo_instances(emb, semantic, confidence, [13], 0.5, 2.0, min_size=2, min_confidence=0.5)
    assert classes == {1: 13, 2: 13}
    assert (instances[:, 5] == 0).all()
    assert len(np.unique(instances[:, :3])) == 1 and len(np.unique(instances[:, 3:5])) == 1
    assert instances[0, 0] != instances[0, 3]
    none, _ = pseudo_instances(emb, semantic, confidence, [11], 0.5, 2.0, 2, 0.5)  # no person pixels
    assert not none.any()


def test_pseudo_instances_drop_small_and_unconfident_masks_and_renumber():
    emb, semantic, confidence = two_blobs()
    small, classes = pseudo_instances(emb, semantic, confidence, [13], 0.5, 2.0, min_size=9, min_confidence=0.0)
    assert classes == {1: 13} and (small[:, :3] == 1).all() and not small[:, 3:].any()
    sure, classes = pseudo_instances(emb, semantic, confidence, [13], 0.5, 2.0, min_size=2, min_confidence=0.7)
    assert classes == {1: 13} and (sure[:, :3] == 1).all() and not sure[:, 3:].any()
    # the first car is cluster 1 (largest); keeping only the second renumbers it to 1
    confidence[:, :3] = 0.1
    swapped, classes = pseudo_instances(emb, semantic, confidence, [13], 0.5, 2.0, min_size=2, min_confidence=0.5)
    assert classes == {1: 13} and (swapped[:, 3:5] == 1).all() and not swapped[:, :3].any()


# ---------------------------------------------------------------------------------------------
# Grading


def test_semantic_grade_counts_hand_values():
    gt = np.array([[0, 0, 1, 255]])
    argmax = np.array([[0, 1, 1, 0]])
    pseudo = np.array([[0, 255, 1, 0]])
    counts = semantic_grade_counts(pseudo, argmax, gt, num_classes=2)
    # class 0: pseudo 1 pixel (correct); argmax 1 pixel with gt (correct); the gt-255 pixel is skipped
    # class 1: pseudo 1 (correct); argmax 2 (1 correct)
    assert counts.tolist() == [[1, 1, 1, 1], [1, 1, 2, 1]]
    assert precision(counts[:, 1], counts[:, 0]).tolist() == [1.0, 1.0]
    assert precision(counts[:, 3].sum(), counts[:, 2].sum()) == pytest.approx(2 / 3)
    assert np.isnan(precision(0, 0))


def test_match_instances_iou_threshold_and_class():
    gt = np.array([[1, 1, 1, 1, 2, 2]])
    pred = np.array([[5, 5, 5, 0, 6, 7]])
    graded = match_instances(pred, {5: 13, 6: 13, 7: 11}, gt, {1: 13, 2: 11})
    # 5 vs gt 1: IoU 3/4 -> TP; 6 vs gt 2 is another class -> IoU 0 -> FP; 7 vs gt 2: 1/2 -> TP
    assert graded == [(13, 0.75, True), (13, 0.0, False), (11, 0.5, True)]
    assert match_instances(pred, {5: 13}, gt, {1: 13}, iou_threshold=0.8) == [(13, 0.75, False)]


def test_guidance_mode_by_round():
    assert guidance_mode({"from_round": 2, "gt_instance_fraction": 0.0}, 1) == "none"
    assert guidance_mode({"from_round": 2, "gt_instance_fraction": 0.0}, 2) == "predicted"
    assert guidance_mode({"from_round": 0, "gt_instance_fraction": 0.0}, 5) == "none"
    assert guidance_mode({"from_round": 2, "gt_instance_fraction": 0.3}, 1) == "ground_truth"


def test_rare_class_probabilities_by_hand():
    from selfpanoptic.train.data import rare_class_probabilities

    # shares: class 0 240/300 = 0.8, class 1 10/300, class 2 50/300; class 3 absent everywhere
    pixels = np.array([[90, 10, 0, 0], [100, 0, 0, 0], [50, 0, 50, 0]])
    t = 0.5
    p_class = np.exp(np.array([1 - 0.8, 1 - 1 / 30, 1 - 1 / 6]) / t)
    p_class /= p_class.sum()
    # class 0 is in all three images, 1 only in image 0, 2 only in image 2
    expected = np.array([p_class[0] / 3 + p_class[1], p_class[0] / 3, p_class[0] / 3 + p_class[2]])
    np.testing.assert_allclose(rare_class_probabilities(pixels, t), expected)
    assert rare_class_probabilities(pixels, t).sum() == pytest.approx(1.0)
    # a tiny temperature draws the rarest class's image; an image of nothing is never drawn
    cold = rare_class_probabilities(np.vstack([pixels, np.zeros(4)]), 0.001)
    assert cold.argmax() == 0 and cold[3] == 0
    with pytest.raises(ValueError):
        rare_class_probabilities(pixels, 0.0)
