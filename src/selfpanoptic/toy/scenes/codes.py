"""Label and appearance codes of toy scenes: trainIds of the 19 classes, part codes, surface
orientation codes and the sky depth."""

from __future__ import annotations

from selfpanoptic.classes import THING_TRAIN_IDS, class_id


ROAD = class_id("road")
SIDEWALK = class_id("sidewalk")
BUILDING = class_id("building")
WALL = class_id("wall")
FENCE = class_id("fence")
POLE = class_id("pole")
TRAFFIC_LIGHT = class_id("traffic light")
TRAFFIC_SIGN = class_id("traffic sign")
VEGETATION = class_id("vegetation")
TERRAIN = class_id("terrain")
SKY = class_id("sky")
PERSON = class_id("person")
RIDER = class_id("rider")
CAR = class_id("car")
TRUCK = class_id("truck")
BUS = class_id("bus")
TRAIN = class_id("train")
MOTORCYCLE = class_id("motorcycle")
BICYCLE = class_id("bicycle")

THINGS = frozenset(THING_TRAIN_IDS)
"""trainIds of the classes with instances."""

# Part codes of Scene.parts: which part of an object a pixel shows. Colour only, labels unchanged.
PART_PLAIN = 0
"""The object's own colour."""
PART_GLASS = 1
"""Vehicle windows."""
PART_WHEEL = 2
"""Tyres and the dark under-body of vehicles."""
PART_MARKING = 3
"""Lane markings and zebra crossings on the road."""
PART_LAMP_RED = 4
PART_LAMP_AMBER = 5
PART_LAMP_GREEN = 6
PART_WINDOW = 7
"""Windows of building facades."""
PART_SKIN = 8
"""Heads of persons and riders."""
PART_DARK = 9
"""Darker secondary parts: trousers, tree trunks, fence bars."""
NUM_PARTS = 10

# Surface orientation codes of Scene.facing (for lighting in the renderer).
FACE_FRONT = 0
"""Faces the camera (normal -Z); also billboards and the sky."""
FACE_LEFT = 1
"""Normal points to -X: e.g. facades on the right side of the street, left sides of boxes."""
FACE_RIGHT = 2
"""Normal points to +X."""
FACE_UP = 3
"""Ground and roofs."""

SKY_DEPTH_M = 1000.0
"""Depth given to sky pixels in Scene.depth."""
