"""Mean-shift+ clustering of embeddings into instances, on small hand-made point sets."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from selfpanoptic.clustering import bin_seeds, instances_from_embeddings, mean_shift, merge_close_clusters


def blobs(sizes: list[int], centres: np.ndarray, std: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    points = np.concatenate([c + rng.normal(0, std, (n, len(c))) for c, n in zip(centres, sizes)])
    truth = np.repeat(np.arange(len(sizes)), sizes)
    return points.astype(np.float32), truth


# --- bin seeding ----------------------------------------------------------------------------------


def test_bin_seeds_hand_case():
    points = np.array(
        [[0.1, 0.1], [0.2, -0.2], [0.9, 0.1], [1.2, 0.3], [0.25, 0.0], [0.75, 0.0]], dtype=np.float32
    )
    # cells round(x / 0.5), halves to even: (0,0) (0,0) (2,0) (2,1) (0,0) (2,0)
    seeds = bin_seeds(points, 0.5)
    assert seeds.dtype == np.float32
    assert seeds.tolist() == [[0.0, 0.0], [1.0, 0.0], [1.0, 0.5]]  # order of first occurrence
    assert bin_seeds(points, 0.5, min_bin_freq=2).tolist() == [[0.0, 0.0], [1.0, 0.0]]
    assert bin_seeds(points, 0.5, min_bin_freq=3).tolist() == [[0.0, 0.0]]
    assert bin_seeds(points, 0.5, min_bin_freq=4).shape == (0, 2)


def test_bin_seeds_are_the_points_when_every_cell_holds_one():
    points = np.array([[0.1, 0.0], [3.1, 0.0], [0.0, 7.2]], dtype=np.float32)
    np.testing.assert_array_equal(bin_seeds(points, 0.5), points)


# --- mean shift -----------------------------------------------------------------------------------


def test_mean_shift_recovers_well_separated_blobs_exactly():
    centres = np.zeros((3, 8))
    centres[1, 0] = 5.0
    centres[2, 3] = -5.0
    points, truth = blobs([30, 60, 45], centres, std=0.05)
    labels = mean_shift(points, 0.5)
    assert labels.dtype == np.int64 and labels.shape == truth.shape
    # one label per blob, the most populous mode first: blob 1 (60) -> 0, blob 2 (45) -> 1, blob 0 -> 2
    np.testing.assert_array_equal(labels, np.array([2, 0, 1])[truth])


def test_mean_shift_one_dimensional_hand_case():
    points = np.array([[0.0], [0.1], [0.2], [3.0], [3.1]], dtype=np.float32)
    assert mean_shift(points, 0.5).tolist() == [0, 0, 0, 1, 1]
    # a bandwidth larger than the gap joins everything
    assert mean_shift(points, 4.0).tolist() == [0, 0, 0, 0, 0]


def test_mean_shift_of_zero_and_one_points():
    empty = mean_shift(np.zeros((0, 8), dtype=np.float32), 0.5)
    assert empty.shape == (0,) and empty.dtype == np.int64
    assert mean_shift(np.ones((1, 8), dtype=np.float32), 0.5).tolist() == [0]


def test_mean_shift_falls_back_to_point_seeds_when_no_seed_reaches_a_point():
    # both points fall in the cell of the origin, which is 0.24 * sqrt(8) = 0.68 > 0.5 away
    # from them (sklearn raises ValueError here); seeding at the points finds their one mode
    points = np.full((3, 8), 0.24, dtype=np.float32)
    points[1, 0] = 0.2
    points[2, 0] = 0.22
    assert bin_seeds(points, 0.5).tolist() == [[0.0] * 8]
    assert mean_shift(points, 0.5).tolist() == [0, 0, 0]

def test_mean_shift_rejects_bad_input():
    with pytest.raises(ValueError):
        mean_shift(np.zeros((4,), dtype=np.float32), 0.5)
    with pytest.raises(ValueError):
        mean_shift(np.full((3, 2), np.nan, dtype=np.float32), 0.5)
    with pytest.raises(ValueError):
        mean_shift(np.zeros((3, 2), dtype=np.float32), 0.0)


# --- merging close clusters -----------------------------------------------------------------------


def test_merge_close_clusters_merges_into_the_larger_and_keeps_far_ones():
    points = np.array(
        [[0, 0]] * 3 + [[1, 0]] * 5 + [[10, 0]] * 4 + [[20, 0]] * 2, dtype=np.float32
    )
    labels = np.array([0] * 3 + [1] * 5 + [2] * 4 + [3] * 2)
    # sizes 3, 5, 4, 2: visit 1 (accept -> 0), 2 (accept -> 1), 0 (1 from cluster 1's mean -> 0),
    # 3 (10 from cluster 2's mean -> accept -> 2)
    merged = merge_close_clusters(points, labels, delta_d=2.0)
    assert merged.tolist() == [0] * 3 + [0] * 5 + [1] * 4 + [2] * 2
    # with a smaller merge distance nothing merges
    assert merge_close_clusters(points, labels, delta_d=0.5).tolist() == [2] * 3 + [0] * 5 + [1] * 4 + [3] * 2


def test_merge_close_clusters_uses_the_first_accepted_cluster_within_reach():
    # cluster means 0 (6 points), 3.0 (5 points) and 1.5 (4 points, within delta_d of both others)
    points = np.array([[0.0]] * 6 + [[3.0]] * 5 + [[1.5]] * 4, dtype=np.float32)
    labels = np.array([5] * 6 + [7] * 5 + [9] * 4)
    # visit 5 (size 6, accepted -> 0), 7 (mean 3.0, 3 away from 0 -> accepted -> 1),
    # 9 (mean 1.5, within 2 of both -> merged into the first accepted, label 0)
    assert merge_close_clusters(points, labels, delta_d=2.0).tolist() == [0] * 6 + [1] * 5 + [0] * 4


# --- instances from an embedding map --------------------------------------------------------------


def embedding_scene() -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """A 12 x 12 scene: road (0), sky (10), two cars (13), one person (11), a small car, a split car."""
    rng = np.random.default_rng(3)
    height, width, dim = 12, 12, 8
    semantic = np.zeros((height, width), dtype=np.uint8)
    semantic[:2] = 10
    codes = {name: np.eye(dim)[i] * 6.0 for i, name in enumerate(["a", "b", "c", "d"])}
    emb = np.zeros((dim, height, width), dtype=np.float32)
    regions = {
        "car_a": (np.s_[2:5, 0:10], 13, codes["a"]),   # 30 px
        "car_b": (np.s_[5:8, 0:8], 13, codes["b"]),    # 24 px
        "person": (np.s_[8:11, 0:8], 11, codes["a"]),  # 24 px, the same embedding as car_a
        "small_car": (np.s_[5:8, 8:10], 13, codes["c"]),  # 6 px < min_size
        "split_car": (np.s_[2:12, 10:12], 13, codes["d"]),  # 20 px in two sub-blobs 1.0 apart
    }
    masks = {}
    for name, (where, class_id, code) in regions.items():
        mask = np.zeros((height, width), dtype=bool)
        mask[where] = True
        semantic[mask] = class_id
        emb[:, mask] = code[:, None]
        masks[name] = mask
    emb[0, masks["split_car"] & (np.arange(height)[:, None] >= 7)] += 1.0
    emb += rng.normal(0, 0.03, emb.shape).astype(np.float32)
    # road pixels carry car_b's embedding: they must still never become an instance
    road = semantic == 0
    emb[:, road] = codes["b"][:, None]
    masks["road"] = road
    return emb, semantic, masks


def test_instances_from_embeddings_on_a_synthetic_scene():
    emb, semantic, masks = embedding_scene()
    instances, classes = instances_from_embeddings(emb, semantic, min_size=20)
    assert instances.dtype == np.int32 and instances.shape == semantic.shape
    # classes in trainId order: person (11) first; cars by size after merging: car_a 30,
    # car_b 24, split_car 20 (its two halves of 10 px merged into one)
    expected = np.zeros(semantic.shape, dtype=np.int32)
    expected[masks["person"]] = 1
    expected[masks["car_a"]] = 2
    expected[masks["car_b"]] = 3
    expected[masks["split_car"]] = 4
    np.testing.assert_array_equal(instances, expected)
    assert classes == {1: 11, 2: 13, 3: 13, 4: 13}
    assert not instances[masks["small_car"]].any()  # dropped: 6 px < min_size
    assert not instances[semantic < 11].any()  # stuff never becomes an instance


def test_instances_from_embeddings_min_size_and_torch_input():
    emb, semantic, masks = embedding_scene()
    instances, classes = instances_from_embeddings(torch.from_numpy(emb), torch.from_numpy(semantic), min_size=5)
    assert classes == {1: 11, 2: 13, 3: 13, 4: 13, 5: 13}  # the small car is kept now
    assert (instances[masks["small_car"]] == 5).all()
    # without the merge step the split car stays in two halves of 10 px, both below min_size 20
    split, _ = instances_from_embeddings(emb, semantic, delta_d=0.2, min_size=20)
    assert not split[masks["split_car"]].any()
    # classes not listed as things are left alone
    only_person, person_classes = instances_from_embeddings(emb, semantic, thing_classes=(11,))
    assert person_classes == {1: 11}
    np.testing.assert_array_equal(only_person, masks["person"].astype(np.int32))


def test_instances_from_embeddings_without_things():
    instances, classes = instances_from_embeddings(np.zeros((8, 3, 4), np.float32), np.zeros((3, 4), np.uint8))
    assert classes == {} and not instances.any()


# --- torch input, devices -------------------------------------------------------------------------


def many_blobs(n: int = 3000, seed: int = 1) -> np.ndarray:
    """Wide 8-dimensional blobs: hundreds of bin seeds, so several seed blocks and re-collections."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(-3, 3, (6, 8))
    sizes = rng.multinomial(n, np.full(6, 1 / 6))
    return blobs(list(sizes), centres, std=0.2, seed=seed)[0]


def test_mean_shift_torch_input_matches_numpy_input():
    for points in (many_blobs(), blobs([30, 60, 45], np.eye(3, 8) * 5.0, std=0.05)[0]):
        expected = mean_shift(points, 0.5)
        labels = mean_shift(torch.from_numpy(points), 0.5)
        assert isinstance(labels, torch.Tensor) and labels.dtype == torch.int64 and labels.device.type == "cpu"
        np.testing.assert_array_equal(labels.numpy(), expected)
        merged = merge_close_clusters(torch.from_numpy(points), labels, 2.0)
        assert isinstance(merged, torch.Tensor)
        np.testing.assert_array_equal(merged.numpy(), merge_close_clusters(points, expected, 2.0))
    seeds = bin_seeds(torch.from_numpy(points), 0.5)
    assert isinstance(seeds, torch.Tensor)
    np.testing.assert_array_equal(seeds.numpy(), bin_seeds(points, 0.5))


def test_explicit_cpu_device():
    points = many_blobs()
    expected = mean_shift(points, 0.5)
    labels = mean_shift(points, 0.5, device="cpu")
    assert isinstance(labels, np.ndarray)  # numpy in, numpy out, whatever the device
    np.testing.assert_array_equal(labels, expected)
    np.testing.assert_array_equal(mean_shift(torch.from_numpy(points), 0.5, device=torch.device("cpu")).numpy(), expected)
    np.testing.assert_array_equal(
        merge_close_clusters(points, expected, 2.0, device="cpu"), merge_close_clusters(points, expected, 2.0))
    emb, semantic, _ = embedding_scene()
    instances, classes = instances_from_embeddings(torch.from_numpy(emb), semantic, device="cpu")
    reference, reference_classes = instances_from_embeddings(emb, semantic)
    assert isinstance(instances, np.ndarray) and instances.dtype == np.int32
    np.testing.assert_array_equal(instances, reference)
    assert classes == reference_classes


def test_mean_shift_ignores_reduced_float32_matmul_precision():
    points = many_blobs()
    expected = mean_shift(points, 0.5)
    previous = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("medium")
    try:
        labels = mean_shift(points, 0.5)
        assert torch.get_float32_matmul_precision() == "medium"  # restored
    finally:
        torch.set_float32_matmul_precision(previous)
    np.testing.assert_array_equal(labels, expected)


def test_mean_shift_matches_sklearn_when_installed():
    cluster = pytest.importorskip("sklearn.cluster")
    metrics = pytest.importorskip("sklearn.metrics")
    points = many_blobs()
    reference = cluster.MeanShift(bandwidth=0.5, bin_seeding=True).fit_predict(points)
    labels = mean_shift(points, 0.5)
    assert labels.max() == reference.max()
    assert metrics.adjusted_rand_score(reference, labels) >= 0.999


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_labels_agree_with_cpu_labels():
    for points in (many_blobs(), many_blobs(20000, seed=2), blobs([30, 60, 45], np.eye(3, 8) * 5.0, std=0.05)[0]):
        expected = mean_shift(points, 0.5)
        labels = mean_shift(torch.from_numpy(points).cuda(), 0.5)
        assert labels.device.type == "cuda"
        np.testing.assert_array_equal(labels.cpu().numpy(), expected)
        np.testing.assert_array_equal(mean_shift(points, 0.5, device="cuda"), expected)
        merged = merge_close_clusters(torch.from_numpy(points).cuda(), labels, 2.0)
        assert merged.device.type == "cuda"
        np.testing.assert_array_equal(merged.cpu().numpy(), merge_close_clusters(points, expected, 2.0))
    emb, semantic, _ = embedding_scene()
    instances, classes = instances_from_embeddings(torch.from_numpy(emb).cuda(), torch.from_numpy(semantic).cuda())
    reference, reference_classes = instances_from_embeddings(emb, semantic)
    np.testing.assert_array_equal(instances, reference)
    assert classes == reference_classes
