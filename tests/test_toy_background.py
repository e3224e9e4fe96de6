"""Hand-checked ground classes and markings of the toy background (selfpanoptic.toy.scenes.background)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from selfpanoptic.toy.scenes.background import GroundLayout, ground_classes, ground_parts
from selfpanoptic.toy.scenes.camera import Street
from selfpanoptic.toy.scenes.codes import PART_MARKING, ROAD, SIDEWALK, TERRAIN
from selfpanoptic.toy.scenes.profiles import SceneProfile

# road 3 m each side of the centre; sidewalks 2 m (left) and 1 m (right)
STREET = Street(x_c=0.0, R=3.0, sidewalk=(2.0, 1.0), verge=(1.0, 1.0), z_end=50.0)


def _layout(**kw) -> GroundLayout:
    verges = [  # left: grass, then paved from 10 m; right: grass all along
        (np.array([0.0, 10.0], np.float32), np.array([TERRAIN, SIDEWALK], np.uint8)),
        (np.array([0.0], np.float32), np.array([TERRAIN], np.uint8)),
    ]
    return GroundLayout(**({"verges": verges, "patches": [], "markings": False, "crosswalk": None} | kw))


def test_ground_classes_by_lateral_distance_depth_and_patches():
    zr = np.array([5.0, 15.0], np.float32)
    lat = np.tile(np.array([-6.0, -4.0, -1.0, 1.0, 3.5, 5.0], np.float32), (2, 1))
    patch = (1, 3.2, 3.8, 10.0, 20.0)  # right side, 3.2..3.8 m out, 10..20 m deep
    got = ground_classes(zr, lat, STREET, _layout(patches=[patch]))
    assert got.dtype == np.uint8
    np.testing.assert_array_equal(got, [
        [TERRAIN, SIDEWALK, ROAD, ROAD, SIDEWALK, TERRAIN],
        [SIDEWALK, SIDEWALK, ROAD, ROAD, TERRAIN, TERRAIN],
    ])


def test_ground_parts_lane_lines_dashes_and_crosswalk():
    zr = np.array([2.0, 6.0], np.float32)  # dashes drawn in the first 4.05 m of every 9 m
    p = replace(SceneProfile(), marking_width_m=1.0)  # two 3 m lanes: lines within 0.5 m of -3, 0, 3 m
    lat = np.tile(np.array([-2.8, -1.0, 0.2, 2.0], np.float32), (2, 1))
    M = PART_MARKING
    np.testing.assert_array_equal(ground_parts(zr, lat, STREET, p, _layout(markings=True)), [
        [M, 0, M, 0],  # edge line, centre dash
        [M, 0, 0, 0],  # edge line only: between dashes
    ])
    # crosswalk 5..8.5 m deep: 0.5 m stripes every metre, kept 0.3 m inside the kerbs
    lat = np.tile(np.array([-2.8, -1.0, 0.2, 2.0, 2.6], np.float32), (2, 1))
    np.testing.assert_array_equal(ground_parts(zr, lat, STREET, p, _layout(crosswalk=5.0)), [
        [0, 0, 0, 0, 0],
        [0, M, M, M, 0],
    ])
