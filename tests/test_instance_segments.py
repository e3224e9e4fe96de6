"""Hand-checked ground-truth segments of the instance evaluator (selfpanoptic.metrics.instance)."""

from __future__ import annotations

import numpy as np

from selfpanoptic.classes import class_id
from selfpanoptic.metrics.instance import ground_truth_segments

PERSON, CAR, ROAD = class_id("person"), class_id("car"), class_id("road")


def test_instances_take_their_majority_class_and_thing_pixels_without_instance_form_groups():
    labels = np.array([[PERSON, PERSON, CAR, 255],
                       [CAR, CAR, ROAD, PERSON]], dtype=np.int64).ravel()
    inst = np.array([[1, 1, 1, 0],
                     [0, 0, 0, 2]], dtype=np.int64).ravel()
    segment, seg_class, seg_area, seg_group = ground_truth_segments(labels, inst)
    # instance 1 is a person (2 of its 3 pixels); its car pixel belongs to no segment;
    # instance 2 is a one-pixel person; the two car pixels without instance are the car group
    np.testing.assert_array_equal(segment, [0, 0, -1, -1, 2, 2, -1, 1])
    np.testing.assert_array_equal(seg_class, [PERSON, PERSON, CAR])
    np.testing.assert_array_equal(seg_area, [2, 1, 2])
    np.testing.assert_array_equal(seg_group, [False, False, True])
    assert segment.dtype == np.int64 and seg_class.dtype == np.int64 and seg_group.dtype == bool


def test_no_thing_pixels_no_segments():
    segment, seg_class, seg_area, seg_group = ground_truth_segments(
        np.array([ROAD, 255], dtype=np.int64), np.array([0, 3], dtype=np.int64))
    np.testing.assert_array_equal(segment, [-1, -1])
    assert seg_class.size == seg_area.size == seg_group.size == 0
