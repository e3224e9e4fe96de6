"""Hand-checked bookkeeping of batch clustering: pixel groups (clustering.instances) and the
renumbering of kept pseudo instances (pseudo.masks)."""

from __future__ import annotations

import numpy as np
import torch

from selfpanoptic.clustering.instances import _pixel_groups
from selfpanoptic.pseudo.masks import _keep_instances, _number_across_batch


def test_pixel_groups_are_image_times_classes_plus_class_position_in_group_then_raster_order():
    sem = torch.tensor([[[11, 0, 13], [13, 11, 0]],
                        [[0, 13, 0], [11, 0, 0]]])
    pixel_group, pixels = _pixel_groups(sem, [13, 11])  # 13 is position 0, 11 position 1
    assert pixel_group.tolist() == [1, -1, 0, 0, 1, -1,
                                    -1, 2, -1, 3, -1, -1]
    assert pixels.tolist() == [2, 3, 0, 4, 7, 9]


def test_kept_instances_are_renumbered_per_image_in_id_order():
    found = [
        (np.array([[1, 2], [0, 1]], np.int32), {1: 11, 2: 13}),
        (np.array([[0, 1], [1, 0]], np.int32), {1: 13}),
    ]
    counts, shift, numbered = _number_across_batch(found)
    assert counts.tolist() == [2, 1] and shift.tolist() == [0, 2]
    assert numbered.tolist() == [1, 2, 0, 1, 0, 3, 3, 0]
    kept = np.array([False, True, True])  # image 0 drops its id 1; image 1 keeps its only one
    (first, first_classes), (second, second_classes) = _keep_instances(found, kept, counts, shift, numbered)
    np.testing.assert_array_equal(first, [[0, 1], [0, 0]])
    assert first_classes == {1: 13}
    np.testing.assert_array_equal(second, [[0, 1], [1, 0]])
    assert second_classes == {1: 13}
    assert first.dtype == np.int32
