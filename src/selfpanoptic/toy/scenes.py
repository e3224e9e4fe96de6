"""Procedural layouts of toy street scenes: label maps only, no colours.

A scene is what a pinhole camera at height ``h_c`` metres sees when it looks horizontally
along a straight street. World coordinates are metres: ``X`` lateral (right positive),
``Y`` height above the ground, ``Z`` depth ahead of the camera. A world point projects to

    x = vx + f * X / Z          (column, pixels)
    y = y_h + f * (h_c - Y) / Z (row, pixels)

with ``y_h`` the horizon row, ``vx`` the vanishing-point column and ``f`` the focal length in
pixels. Ground points therefore lie below the horizon, and an object whose ground contact is
at row ``y`` is drawn at ``(y - y_h) / h_c`` pixels per metre: lower in the image means nearer
and larger. Because ``f``, ``y_h`` and ``vx`` are fractions of the image size, one random
scene drawn at 64x128 and at 256x512 has the same content, just rasterised differently.

Pixel ``(r, c)`` covers ``[c, c+1) x [r, r+1)``; a shape owns a pixel when the pixel centre
``(c + 0.5, r + 0.5)`` lies inside it.

Layers, painted back to front:

1. background (vectorised per row / per column): sky, ground (road with lane markings,
   sidewalks, terrain verges and patches), a row of far buildings where the street ends,
   facades (or tree rows) along both sides, walls, fences and hedges in front of them;
2. objects, sorted by depth (painter's algorithm): poles with traffic signs and lights, trees,
   cars, trucks, buses, trains, persons, riders on bicycles / motorcycles, parked bikes.

Besides the labels a :class:`Scene` carries appearance hints that only the renderer uses
(part codes such as glass or wheels, surface orientation, depth, object pieces); they never
change a label.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial
from typing import Callable

import numpy as np

from selfpanoptic.classes import CLASS_NAMES, NUM_CLASSES, THING_TRAIN_IDS, class_id

Range = tuple[float, float]
"""(low, high) of a uniformly sampled value."""
IntRange = tuple[int, int]
"""(low, high) of a uniformly sampled integer, both included."""

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

_THINGS = frozenset(THING_TRAIN_IDS)

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


# --------------------------------------------------------------------------------------
# Parameters
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ObjectSizes:
    """World sizes of objects in metres, each a (min, max) range sampled uniformly.

    Every size of a thing, pole, sign, light and tree is multiplied by
    :attr:`SceneProfile.object_scale`.
    """

    car_width: Range = (1.7, 1.95)
    car_length: Range = (3.9, 4.8)
    car_body_height: Range = (0.75, 0.95)
    car_cabin_height: Range = (0.45, 0.6)
    car_wheel_radius: float = 0.32
    truck_width: Range = (2.4, 2.6)
    truck_cab_length: Range = (1.9, 2.4)
    truck_cab_height: Range = (2.7, 3.2)
    truck_cargo_length: Range = (5.0, 8.5)
    truck_cargo_height: Range = (3.2, 3.9)
    truck_wheel_radius: float = 0.5
    bus_width: Range = (2.5, 2.6)
    bus_length: Range = (10.0, 12.5)
    bus_height: Range = (3.0, 3.4)
    train_width: Range = (2.7, 3.0)
    train_height: Range = (3.5, 4.0)
    train_car_length: Range = (13.0, 19.0)
    train_cars: IntRange = (2, 4)
    train_car_gap: float = 0.8
    person_height: Range = (1.5, 1.92)
    bicycle_length: Range = (1.6, 1.8)
    bicycle_wheel_radius: float = 0.34
    motorcycle_length: Range = (1.9, 2.2)
    motorcycle_wheel_radius: float = 0.31
    pole_height: Range = (3.0, 6.0)
    pole_width: Range = (0.12, 0.25)
    sign_size: Range = (0.5, 0.9)
    light_height: Range = (0.8, 1.1)
    light_width: float = 0.35
    light_arm_length: Range = (2.0, 4.5)
    tree_height: Range = (4.0, 10.0)
    crown_radius: Range = (1.3, 3.2)
    trunk_width: Range = (0.25, 0.45)


@dataclass(frozen=True)
class SceneProfile:
    """Every knob of the scene geometry; one profile per domain.

    Metres are world units (see the module docstring); ``*_frac`` values are fractions of the
    image height or width; ``*_prob`` values are probabilities per image unless stated;
    ``*_count`` values are inclusive integer ranges.
    """

    # -- camera --
    horizon_frac: Range = (0.40, 0.50)
    """Horizon row / image height."""
    vanishing_x_frac: Range = (0.42, 0.58)
    """Vanishing-point column / image width (camera yaw relative to the street)."""
    focal_frac: Range = (0.85, 1.0)
    """Focal length in pixels / image width."""
    camera_height_m: Range = (1.3, 1.8)

    # -- street --
    road_half_width_m: Range = (3.5, 6.5)
    road_offset_m: Range = (-1.5, 1.5)
    """Lateral offset of the road centre from the camera (kept inside the road)."""
    sidewalk_width_m: Range = (2.5, 5.5)
    """Per side."""
    verge_prob: float = 0.5
    """Per side: a strip between sidewalk and building line (terrain or paving) exists."""
    verge_width_m: Range = (1.0, 5.0)
    verge_segment_m: Range = (6.0, 25.0)
    """Length along the street of one verge segment (each is terrain or paving)."""
    terrain_verge_prob: float = 0.6
    """Per verge segment: grass (terrain) rather than paving (sidewalk)."""
    terrain_patch_count: IntRange = (0, 3)
    """Grass patches cut into the sidewalks."""
    terrain_patch_length_m: Range = (2.0, 8.0)
    lane_width_m: float = 3.3
    lane_marking_prob: float = 0.85
    marking_width_m: float = 0.15
    dash_period_m: float = 9.0
    dash_duty: float = 0.45
    """Fraction of a dash period that is painted."""
    crosswalk_prob: float = 0.25
    crosswalk_length_m: float = 3.5
    crosswalk_stripe_m: float = 0.5

    # -- buildings --
    street_length_m: Range = (45.0, 110.0)
    """Depth where the side facades end; a row of far buildings closes the street there."""
    building_length_m: Range = (6.0, 28.0)
    """Length along the street of one facade segment."""
    building_height_m: Range = (5.0, 24.0)
    building_gap_prob: float = 0.15
    """Per facade segment: a row of trees (vegetation) instead of a building."""
    tree_row_height_m: Range = (4.0, 11.0)
    far_building_width_m: Range = (8.0, 30.0)
    far_building_height_m: Range = (4.0, 18.0)
    far_gap_prob: float = 0.3
    """Per far block: a gap showing sky instead of a building."""
    window_prob: float = 0.8
    """Per building: it has a grid of windows (colour only)."""
    floor_height_m: Range = (2.8, 3.6)
    window_spacing_m: Range = (2.5, 4.5)

    # -- walls, fences, hedges: planes just in front of the facades --
    wall_prob: float = 0.5
    wall_count: IntRange = (1, 2)
    wall_height_m: Range = (1.0, 3.0)
    fence_prob: float = 0.5
    fence_count: IntRange = (1, 2)
    fence_height_m: Range = (1.0, 2.2)
    fence_bar_spacing_m: float = 0.35
    hedge_prob: float = 0.3
    hedge_count: IntRange = (1, 2)
    hedge_height_m: Range = (0.7, 1.6)
    barrier_length_m: Range = (8.0, 30.0)
    """Length along the street of one wall / fence / hedge."""
    barrier_setback_m: float = 0.3
    """Distance of walls, fences and hedges in front of the building line."""

    # -- props --
    tree_count: IntRange = (0, 5)
    pole_count: IntRange = (1, 5)
    sign_prob: float = 0.55
    """Per pole: carries a traffic sign."""
    second_sign_prob: float = 0.25
    """Per pole with a sign: a second sign below the first."""
    light_prob: float = 0.4
    """Per pole: carries a traffic light."""
    light_arm_prob: float = 0.35
    """Per traffic light: hangs from an arm over the road instead of sitting on the pole."""

    # -- things --
    car_count: IntRange = (1, 7)
    parked_car_frac: float = 0.45
    """Share of cars parked at the kerb (the rest drive in lanes)."""
    truck_prob: float = 0.3
    """Chance of trucks in an image when generate_scene(include_truck=None)."""
    truck_count: IntRange = (1, 2)
    bus_prob: float = 0.3
    bus_count: IntRange = (1, 1)
    train_prob: float = 0.2
    """Chance of a train in an image when generate_scene(include_train=None)."""
    train_count: IntRange = (1, 1)
    train_mode: str = "mixed"
    """How trains are placed: "crossing" (side view, crossing the street at one depth),
    "along" (tram driving along the street in a side lane) or "mixed" (either, 50/50)."""
    person_count: IntRange = (1, 8)
    person_on_road_frac: float = 0.15
    """Share of persons crossing the road (the rest walk on sidewalks)."""
    person_group_prob: float = 0.3
    """Per person: one or two more persons stand close by."""
    rider_count: IntRange = (0, 3)
    """Riders, each on their own bicycle or motorcycle."""
    motorcycle_share: float = 0.4
    """Share of riders on motorcycles (the rest on bicycles)."""
    parked_bicycle_count: IntRange = (0, 3)
    parked_motorcycle_count: IntRange = (0, 2)
    object_scale: float = 1.0
    """Multiplies every size in ``sizes``."""
    sizes: ObjectSizes = ObjectSizes()

    # -- where objects stand --
    contact_row_range: Range = (0.03, 1.08)
    """Ground-contact row of an object, as a fraction of the rows from horizon (0) to image
    bottom (1); > 1 lets near objects be cut off by the image border."""
    depth_bias: float = 1.5
    """Exponent on the uniform draw within contact_row_range: > 1 favours far (small)
    objects, < 1 near (large) ones."""
    max_object_depth_m: float = 80.0
    forced_contact_row_range: Range = (0.25, 0.7)
    """Where a forced truck / train is re-placed when it ended up hidden."""
    min_forced_visible_frac: float = 20 / (128 * 256)
    """Pixels (as a share of the image) a forced truck / train must show."""
    max_place_attempts: int = 12
    """Tries to find a free spot for one object, and re-placements of a hidden forced one."""

    absent_classes: tuple[str, ...] = ()
    """Class names never generated (e.g. ("terrain",) for Synthia); area classes are
    replaced by a related class, objects are left out."""

    def __post_init__(self) -> None:
        for name in self.absent_classes:
            class_id(name)  # raises KeyError listing the valid names
        if self.train_mode not in ("crossing", "along", "mixed"):
            raise ValueError(f"train_mode must be crossing, along or mixed, not {self.train_mode!r}")
        if self.street_length_m[0] < 10.0:
            raise ValueError(f"street_length_m must start at >= 10 m, got {self.street_length_m}")
        if not 0.0 < self.horizon_frac[0] <= self.horizon_frac[1] < 0.95:
            raise ValueError(f"horizon_frac must lie in (0, 0.95), got {self.horizon_frac}")


DEFAULT_PROFILE = SceneProfile()

PROFILES: dict[str, SceneProfile] = {
    # Synthia: random viewpoints (often higher cameras), many pedestrians and riders,
    # no terrain, trucks and trains rare.
    "synthia": SceneProfile(
        horizon_frac=(0.30, 0.50),
        camera_height_m=(1.5, 3.5),
        person_count=(2, 12),
        rider_count=(0, 4),
        car_count=(0, 5),
        truck_prob=0.1,
        train_prob=0.05,
        bus_prob=0.25,
        pole_count=(2, 6),
        object_scale=0.95,
        absent_classes=("terrain",),
    ),
    # GTA: car-centred driving views, more and varied vehicles.
    "gta": SceneProfile(
        horizon_frac=(0.42, 0.52),
        camera_height_m=(1.4, 1.9),
        car_count=(2, 7),
        truck_prob=0.35,
        bus_prob=0.3,
        train_prob=0.25,
        person_count=(0, 6),
        depth_bias=1.6,
    ),
    # Cityscapes: lower horizon, low dashcam, more parked cars and greenery, larger (nearer)
    # objects, trucks and trains rare.
    "cityscapes": SceneProfile(
        horizon_frac=(0.36, 0.45),
        camera_height_m=(1.2, 1.4),
        parked_car_frac=0.6,
        car_count=(1, 6),
        truck_prob=0.15,
        train_prob=0.1,
        bus_prob=0.15,
        verge_prob=0.65,
        tree_count=(1, 6),
        hedge_prob=0.4,
        object_scale=1.1,
        depth_bias=1.5,
    ),
}
"""Example geometry profiles of the three toy domains (callers may define their own)."""


# --------------------------------------------------------------------------------------
# The scene
# --------------------------------------------------------------------------------------


@dataclass
class Scene:
    """Labels of one toy image (plus appearance hints for the renderer).

    semantic:  (H, W) uint8, trainId 0..18 of every pixel (no ignore).
    instances: (H, W) int32, 0 on stuff pixels, 1..K on thing pixels (consecutive, every
               index visible).
    instance_classes: instance index -> trainId; equals the semantic class of all its pixels.
    parts:  (H, W) uint8 PART_* code (colour only), or None.
    facing: (H, W) uint8 FACE_* surface orientation, or None.
    depth:  (H, W) float32 metres from the camera (SKY_DEPTH_M on sky), or None.
    pieces: (H, W) int32 id of the object or building block a pixel belongs to (0 for ground
            and sky), so the renderer can vary colours per object, or None.
    horizon_y: horizon row in pixels (may lie between rows), or None.
    """

    semantic: np.ndarray
    instances: np.ndarray
    instance_classes: dict[int, int]
    parts: np.ndarray | None = None
    facing: np.ndarray | None = None
    depth: np.ndarray | None = None
    pieces: np.ndarray | None = None
    horizon_y: float | None = None


# --------------------------------------------------------------------------------------
# Camera and street
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Camera:
    H: int
    W: int
    y_h: float  # horizon row
    vx: float  # vanishing-point column
    f: float  # focal length, pixels
    h_c: float  # camera height, metres

    def x(self, X: float, Z: float) -> float:
        return self.vx + self.f * X / Z

    def y(self, Y: float, Z: float) -> float:
        return self.y_h + self.f * (self.h_c - Y) / Z

    def depth_of_row_frac(self, frac: float) -> float:
        """Depth of the ground point at ``frac`` of the way from horizon to image bottom."""
        return self.f * self.h_c / (max(frac, 1e-4) * (self.H - self.y_h))

    def row_frac_of_depth(self, Z: float) -> float:
        return self.f * self.h_c / (Z * (self.H - self.y_h))

    def visible_x_range(self, Z: float) -> tuple[float, float]:
        """Lateral extent (metres) of the image at depth Z."""
        return (0.0 - self.vx) * Z / self.f, (self.W - self.vx) * Z / self.f


@dataclass(frozen=True)
class _Street:
    x_c: float  # road centre, lateral metres
    R: float  # road half width
    sidewalk: tuple[float, float]  # widths left, right
    verge: tuple[float, float]  # widths left, right (0 = none)
    z_end: float  # depth where the side facades end

    def side_index(self, s: int) -> int:
        return 0 if s < 0 else 1

    def kerb(self, s: int) -> float:
        return self.x_c + s * self.R

    def sidewalk_outer(self, s: int) -> float:
        return self.x_c + s * (self.R + self.sidewalk[self.side_index(s)])

    def building_line(self, s: int) -> float:
        i = self.side_index(s)
        return self.x_c + s * (self.R + self.sidewalk[i] + self.verge[i])


def _uniform(rng: np.random.Generator, r: Range) -> float:
    return float(rng.uniform(r[0], r[1]))


def _count(rng: np.random.Generator, r: IntRange) -> int:
    return int(rng.integers(r[0], r[1] + 1))


def _sample_camera(rng: np.random.Generator, H: int, W: int, p: SceneProfile) -> _Camera:
    return _Camera(
        H=H,
        W=W,
        y_h=_uniform(rng, p.horizon_frac) * H,
        vx=_uniform(rng, p.vanishing_x_frac) * W,
        f=_uniform(rng, p.focal_frac) * W,
        h_c=_uniform(rng, p.camera_height_m),
    )


def _sample_street(rng: np.random.Generator, p: SceneProfile) -> _Street:
    R = _uniform(rng, p.road_half_width_m)
    # The camera drives on the road: keep it at least one metre inside the kerbs.
    x_c = float(np.clip(_uniform(rng, p.road_offset_m), -(R - 1.0), R - 1.0))
    sidewalk = (_uniform(rng, p.sidewalk_width_m), _uniform(rng, p.sidewalk_width_m))
    verge = tuple(
        _uniform(rng, p.verge_width_m) if rng.random() < p.verge_prob else 0.0 for _ in range(2)
    )
    return _Street(x_c=x_c, R=R, sidewalk=sidewalk, verge=verge, z_end=_uniform(rng, p.street_length_m))


# --------------------------------------------------------------------------------------
# Absent classes
# --------------------------------------------------------------------------------------

_AREA_FALLBACKS: dict[int, tuple[int, ...]] = {
    ROAD: (SIDEWALK, TERRAIN, BUILDING),
    SIDEWALK: (ROAD, TERRAIN, VEGETATION),
    BUILDING: (WALL, VEGETATION, SKY),
    WALL: (BUILDING, FENCE, VEGETATION),
    FENCE: (WALL, BUILDING, VEGETATION),
    VEGETATION: (TERRAIN, BUILDING, SIDEWALK),
    TERRAIN: (SIDEWALK, VEGETATION, ROAD),
    SKY: (BUILDING, VEGETATION),
}
"""Background classes and what replaces them, in order of preference, when absent."""


def _area_lut(absent: frozenset[int]) -> np.ndarray:
    """uint8[NUM_CLASSES] remapping absent background classes to their first present fallback."""
    lut = np.arange(NUM_CLASSES, dtype=np.uint8)
    for cls, fallbacks in _AREA_FALLBACKS.items():
        if cls in absent:
            present = [c for c in fallbacks if c not in absent]
            if not present:
                raise ValueError(
                    f"absent_classes removes {CLASS_NAMES[cls]!r} and all its stand-ins "
                    f"{[CLASS_NAMES[c] for c in fallbacks]}"
                )
            lut[cls] = present[0]
    return lut


# --------------------------------------------------------------------------------------
# Rasterisation
# --------------------------------------------------------------------------------------


def _span(lo: float, hi: float, n: int) -> tuple[int, int]:
    """Pixel indices [i0, i1) whose centres lie in [lo, hi), clipped to [0, n)."""
    return max(0, math.ceil(lo - 0.5)), min(n, math.ceil(hi - 0.5))


def _convex_mask(xs: list[float], ys: list[float], H: int, W: int):
    """Pixels whose centres lie inside the convex polygon with vertices (xs, ys) (pixels).

    Returns (r0, c0, mask) with mask a bool array of the clipped bounding box, or None.
    """
    c0, c1 = _span(min(xs), max(xs), W)
    r0, r1 = _span(min(ys), max(ys), H)
    if c1 <= c0 or r1 <= r0:
        return None
    n = len(xs)
    area2 = sum(xs[i] * ys[(i + 1) % n] - xs[(i + 1) % n] * ys[i] for i in range(n))
    if abs(area2) < 1e-9:
        return None
    sign = 1.0 if area2 > 0 else -1.0
    px = np.arange(c0, c1, dtype=np.float32)[None, :] + 0.5
    py = np.arange(r0, r1, dtype=np.float32)[:, None] + 0.5
    mask = None
    for i in range(n):
        ax, ay, bx, by = xs[i], ys[i], xs[(i + 1) % n], ys[(i + 1) % n]
        # inside = on the inner side of every edge (cross product sign = orientation)
        inside = (sign * (bx - ax)) * (py - ay) - (sign * (by - ay)) * (px - ax) >= 0
        mask = inside if mask is None else mask & inside
    return r0, c0, mask


def _ellipse_mask(cx: float, cy: float, rx: float, ry: float, H: int, W: int):
    """Pixels whose centres lie inside an axis-aligned ellipse; (r0, c0, mask) or None."""
    if rx <= 0 or ry <= 0:
        return None
    c0, c1 = _span(cx - rx, cx + rx, W)
    r0, r1 = _span(cy - ry, cy + ry, H)
    if c1 <= c0 or r1 <= r0:
        return None
    dx = ((np.arange(c0, c1, dtype=np.float32) + 0.5 - cx) / rx)[None, :]
    dy = ((np.arange(r0, r1, dtype=np.float32) + 0.5 - cy) / ry)[:, None]
    return r0, c0, dx * dx + dy * dy <= 1.0


class _Painter:
    """Paints primitives back to front into a map of primitive ids.

    Every primitive id (index into ``attrs``) stands for (class, provisional instance, part,
    facing, depth, piece); id 0 is "background". One painted map plus lookup tables keeps the
    painting to a single array write per primitive.
    """

    def __init__(self, cam: _Camera, absent: frozenset[int], first_piece: int):
        self.cam = cam
        self.absent = absent
        self.pid = np.zeros((cam.H, cam.W), dtype=np.int32)
        self.attrs: list[tuple[int, int, int, int, float, int]] = [(0, 0, 0, 0, 0.0, 0)]
        self.instance_classes: dict[int, int] = {}  # provisional instance -> class
        self._next_piece = first_piece
        self._cur: tuple[int, int, float, int] | None = None  # cls, instance, depth, piece
        self._prims: dict[tuple[int, int], int] = {}

    def begin(self, cls: int, depth: float) -> bool:
        """Start a new object (one instance when a thing class, one piece).

        Returns False, and ignores the drawing calls until the next begin, when the class is absent.
        """
        self._prims = {}
        if cls in self.absent:
            self._cur = None
            return False
        inst = 0
        if cls in _THINGS:
            inst = len(self.instance_classes) + 1
            self.instance_classes[inst] = cls
        self._cur = (cls, inst, depth, self._next_piece)
        self._next_piece += 1
        return True

    def _prim(self, part: int, face: int) -> int:
        key = (part, face)
        pid = self._prims.get(key)
        if pid is None:
            cls, inst, depth, piece = self._cur
            pid = len(self.attrs)
            self.attrs.append((cls, inst, part, face, depth, piece))
            self._prims[key] = pid
        return pid

    def rect(self, x0, y0, x1, y1, part=PART_PLAIN, face=FACE_FRONT, min_size=False) -> None:
        """Axis-aligned rectangle in pixels; ``min_size`` keeps thin shapes >= 1 pixel wide/high."""
        if self._cur is None:
            return
        x0, x1 = min(x0, x1), max(x0, x1)
        y0, y1 = min(y0, y1), max(y0, y1)
        c0, c1 = math.ceil(x0 - 0.5), math.ceil(x1 - 0.5)
        r0, r1 = math.ceil(y0 - 0.5), math.ceil(y1 - 0.5)
        if min_size and c1 <= c0:
            c0 = math.floor(0.5 * (x0 + x1))
            c1 = c0 + 1
        if min_size and r1 <= r0:
            r0 = math.floor(0.5 * (y0 + y1))
            r1 = r0 + 1
        c0, c1 = max(c0, 0), min(c1, self.cam.W)
        r0, r1 = max(r0, 0), min(r1, self.cam.H)
        if c1 > c0 and r1 > r0:
            self.pid[r0:r1, c0:c1] = self._prim(part, face)

    def _apply(self, found, part: int, face: int) -> None:
        if found is None:
            return
        r0, c0, mask = found
        h, w = mask.shape
        self.pid[r0 : r0 + h, c0 : c0 + w][mask] = self._prim(part, face)

    def poly(self, xs, ys, part=PART_PLAIN, face=FACE_FRONT) -> None:
        """Convex polygon with vertices (xs, ys) in pixels."""
        if self._cur is not None:
            self._apply(_convex_mask(xs, ys, self.cam.H, self.cam.W), part, face)

    def ellipse(self, cx, cy, rx, ry, part=PART_PLAIN, face=FACE_FRONT) -> None:
        if self._cur is not None:
            self._apply(_ellipse_mask(cx, cy, rx, ry, self.cam.H, self.cam.W), part, face)


# --------------------------------------------------------------------------------------
# 3-D boxes (vehicles) and billboards (persons, bikes, poles, trees)
# --------------------------------------------------------------------------------------


def _front(p: _Painter, X0, X1, Y0, Y1, Z, part=PART_PLAIN) -> None:
    """Rectangle X0..X1 x Y0..Y1 (metres) on the plane at depth Z, facing the camera."""
    c = p.cam
    p.rect(c.x(X0, Z), c.y(Y1, Z), c.x(X1, Z), c.y(Y0, Z), part, FACE_FRONT)


def _side(p: _Painter, X, Y0, Y1, Z0, Z1, part=PART_PLAIN) -> None:
    """Quad on the vertical plane at lateral X spanning depths Z0..Z1 and heights Y0..Y1."""
    c = p.cam
    xs = [c.x(X, Z0), c.x(X, Z0), c.x(X, Z1), c.x(X, Z1)]
    ys = [c.y(Y0, Z0), c.y(Y1, Z0), c.y(Y1, Z1), c.y(Y0, Z1)]
    p.poly(xs, ys, part, FACE_LEFT if X > 0 else FACE_RIGHT)


def _top(p: _Painter, X0, X1, Y, Z0, Z1, part=PART_PLAIN) -> None:
    c = p.cam
    xs = [c.x(X0, Z0), c.x(X1, Z0), c.x(X1, Z1), c.x(X0, Z1)]
    ys = [c.y(Y, Z0), c.y(Y, Z0), c.y(Y, Z1), c.y(Y, Z1)]
    p.poly(xs, ys, part, FACE_UP)


def _visible_side(X0: float, X1: float) -> float | None:
    """Lateral position of the side face of a box the camera (at X = 0) can see, if any."""
    if X0 > 0:
        return X0
    if X1 < 0:
        return X1
    return None


def _box(p: _Painter, X0, X1, Y0, Y1, Z0, Z1, part=PART_PLAIN) -> None:
    """Axis-aligned box: its visible side, top and front faces (convex: they never overlap)."""
    xs = _visible_side(X0, X1)
    if xs is not None:
        _side(p, xs, Y0, Y1, Z0, Z1, part)
    if Y1 < p.cam.h_c:
        _top(p, X0, X1, Y1, Z0, Z1, part)
    _front(p, X0, X1, Y0, Y1, Z0, part)


def _wheels(p: _Painter, X0, X1, Z0, Z1, r, axle_inset) -> None:
    """Dark tyre blocks at the bottom corners of the front face and wheel ellipses on the side."""
    tyre = min(0.3, 0.2 * (X1 - X0))
    _front(p, X0, X0 + tyre, 0.0, r, Z0, PART_WHEEL)
    _front(p, X1 - tyre, X1, 0.0, r, Z0, PART_WHEEL)
    xs = _visible_side(X0, X1)
    if xs is None:
        return
    c = p.cam
    for zw in (Z0 + axle_inset, Z1 - axle_inset):
        # foreshortened: the side plane recedes, so a wheel is narrower than tall
        rx = r * c.f * abs(xs) / (zw * zw)
        p.ellipse(c.x(xs, zw), c.y(r, zw), max(rx, 0.3), r * c.f / zw, PART_WHEEL, FACE_FRONT)


def _draw_car(p: _Painter, xc, z, w, l, hb, hcab, r) -> None:
    if not p.begin(CAR, z):
        return
    X0, X1, Z1 = xc - w / 2, xc + w / 2, z + l
    _box(p, X0, X1, 0.0, hb, z, Z1)
    _wheels(p, X0, X1, z, Z1, r, 0.2 * l)
    lamp = 0.15 * w
    _front(p, X0 + 0.05, X0 + 0.05 + lamp, hb - 0.28, hb - 0.12, z, PART_LAMP_RED)
    _front(p, X1 - 0.05 - lamp, X1 - 0.05, hb - 0.28, hb - 0.12, z, PART_LAMP_RED)
    # cabin: narrower and set back, mostly glass
    cx0, cx1, cz0, cz1 = X0 + 0.1, X1 - 0.1, z + 0.25 * l, Z1 - 0.22 * l
    _box(p, cx0, cx1, hb, hb + hcab, cz0, cz1)
    _front(p, cx0 + 0.1, cx1 - 0.1, hb + 0.04, hb + hcab - 0.07, cz0, PART_GLASS)
    xs = _visible_side(cx0, cx1)
    if xs is not None:
        _side(p, xs, hb + 0.04, hb + hcab - 0.07, cz0 + 0.15, cz1 - 0.15, PART_GLASS)


def _draw_truck(p: _Painter, xc, z, w, lcab, hcab, lcargo, hcargo, r, oncoming) -> None:
    if not p.begin(TRUCK, z):
        return
    X0, X1 = xc - w / 2, xc + w / 2
    gap = 0.3
    if oncoming:  # cab in front, cargo box behind
        parts = [("cargo", z + lcab + gap, lcargo, hcargo), ("cab", z, lcab, hcab)]
    else:  # driving away: we see the back of the cargo box, the cab further ahead
        parts = [("cab", z + lcargo + gap, lcab, hcab), ("cargo", z, lcargo, hcargo)]
    for name, z0, length, h in parts:  # far part first
        _box(p, X0, X1, 0.0, h, z0, z0 + length)
        _wheels(p, X0, X1, z0, z0 + length, r, min(0.25 * length, 1.2))
        if name == "cab":
            if oncoming:
                _front(p, X0 + 0.15, X1 - 0.15, 0.6 * h, 0.9 * h, z0, PART_GLASS)
            xs = _visible_side(X0, X1)
            if xs is not None:
                _side(p, xs, 0.6 * h, 0.9 * h, z0 + 0.15 * length, z0 + 0.6 * length, PART_GLASS)


def _draw_bus(p: _Painter, xc, z, w, l, h, r) -> None:
    if not p.begin(BUS, z):
        return
    X0, X1 = xc - w / 2, xc + w / 2
    _box(p, X0, X1, 0.0, h, z, z + l)
    _wheels(p, X0, X1, z, z + l, r, 2.2)
    _front(p, X0 + 0.15, X1 - 0.15, 0.36 * h, 0.85 * h, z, PART_GLASS)
    xs = _visible_side(X0, X1)
    if xs is not None:  # window band along the side
        _side(p, xs, 0.4 * h, 0.8 * h, z + 0.4, z + l - 0.4, PART_GLASS)


def _draw_train(p: _Painter, cars: list[tuple[float, float, float, float]], h, front_z) -> None:
    """Train cars as boxes (X0, X1, Z0, Z1), one instance; drawn far first."""
    if not p.begin(TRAIN, front_z):
        return
    # far first: by depth, then (crossing cars share a depth) by lateral distance from the camera
    for X0, X1, Z0, Z1 in sorted(cars, key=lambda b: -(b[2] + abs(0.5 * (b[0] + b[1])) * 0.01)):
        _box(p, X0, X1, 0.0, h, Z0, Z1)
        _front(p, X0, X1, 0.0, 0.16 * h, Z0, PART_WHEEL)  # bogies / under-body
        xs = _visible_side(X0, X1)
        if xs is not None:
            _side(p, xs, 0.0, 0.16 * h, Z0, Z1, PART_WHEEL)
        if X1 - X0 > Z1 - Z0:  # seen from the side (crossing): a row of windows
            n = max(1, int((X1 - X0) / 2.4))
            step = (X1 - X0) / n
            for k in range(n):
                a = X0 + k * step + 0.25 * step
                _front(p, a, a + 0.55 * step, 0.42 * h, 0.7 * h, Z0, PART_GLASS)
        else:  # seen end-on (along the street): windscreen and a side window band
            _front(p, X0 + 0.25, X1 - 0.25, 0.45 * h, 0.75 * h, Z0, PART_GLASS)
            if xs is not None:
                _side(p, xs, 0.42 * h, 0.7 * h, Z0 + 0.5, Z1 - 0.5, PART_GLASS)


class _Billboard:
    """Maps offsets in metres (dx right, Y up) around a ground point to pixels."""

    def __init__(self, cam: _Camera, X: float, Z: float):
        self.u = cam.f / Z  # pixels per metre
        self.gx = cam.x(X, Z)
        self.gy = cam.y(0.0, Z)

    def pts(self, offsets: list[tuple[float, float]]) -> tuple[list[float], list[float]]:
        return [self.gx + dx * self.u for dx, _ in offsets], [self.gy - Y * self.u for _, Y in offsets]

    def ellipse(self, p: _Painter, dx, Y, rx, ry, part=PART_PLAIN) -> None:
        p.ellipse(self.gx + dx * self.u, self.gy - Y * self.u, rx * self.u, ry * self.u, part)

    def rect(self, p: _Painter, dx0, Y0, dx1, Y1, part=PART_PLAIN, min_size=False) -> None:
        u = self.u
        p.rect(self.gx + dx0 * u, self.gy - Y1 * u, self.gx + dx1 * u, self.gy - Y0 * u, part, FACE_FRONT, min_size)


# Body proportions of a standing person, as fractions of the body height.
_HIP = 0.50
_SHOULDER = 0.81
_HIP_HALF_WIDTH = 0.1
_SHOULDER_HALF_WIDTH = 0.13
_HEAD_Y = 0.9
_HEAD_RX, _HEAD_RY = 0.06, 0.075


def _draw_person(p: _Painter, X, z, h, stride) -> None:
    if not p.begin(PERSON, z):
        return
    b = _Billboard(p.cam, X, z)
    hip, sh = _HIP * h, _SHOULDER * h
    xs, ys = b.pts([(-stride / 2, 0.0), (stride / 2, 0.0), (_HIP_HALF_WIDTH * h, hip), (-_HIP_HALF_WIDTH * h, hip)])
    p.poly(xs, ys, PART_DARK)
    xs, ys = b.pts([
        (-_HIP_HALF_WIDTH * h * 1.1, hip - 0.04 * h), (_HIP_HALF_WIDTH * h * 1.1, hip - 0.04 * h),
        (_SHOULDER_HALF_WIDTH * h, sh), (-_SHOULDER_HALF_WIDTH * h, sh),
    ])
    p.poly(xs, ys)
    b.ellipse(p, 0.0, _HEAD_Y * h, _HEAD_RX * h, _HEAD_RY * h, PART_SKIN)


@dataclass(frozen=True)
class _BikeGeom:
    """Side-view bike in metres around its ground centre; dx already foreshortened."""

    motor: bool
    s: int  # +1 facing right, -1 facing left (image)
    c: float  # |sin(yaw)|: 1 = seen from the side, 0 = from behind
    r: float  # wheel radius
    half_base: float  # projected half wheelbase (>= a minimal frame half width)
    seat: tuple[float, float]
    bar: tuple[float, float]
    pedal: tuple[float, float]
    bar_half_width: float  # projected half handlebar width


def _bike_geom(rng: np.random.Generator, motor: bool, length: float, r: float, scale: float) -> _BikeGeom:
    s = 1 if rng.random() < 0.5 else -1
    c = float(rng.uniform(0.15, 1.0))
    base = length - 2 * r
    # seen from behind the frame still has width: the handlebar / engine
    half = max(0.5 * base * c, (0.2 if motor else 0.08) * scale)
    seat = (-s * 0.25 * base * c, (0.8 if motor else 0.95) * scale)
    bar = (s * 0.4 * base * c, (1.0 if motor else 1.05) * scale)
    pedal = (0.0, (0.4 if motor else 0.3) * scale)
    bar_half = max(0.3 * math.sqrt(max(0.0, 1 - c * c)), 0.05) * scale
    return _BikeGeom(motor, s, c, r, half, seat, bar, pedal, bar_half)


def _draw_bike(p: _Painter, X, z, g: _BikeGeom) -> None:
    if not p.begin(MOTORCYCLE if g.motor else BICYCLE, z):
        return
    b = _Billboard(p.cam, X, z)
    s, r = g.s, g.r
    rear, front = -s * g.half_base, s * g.half_base
    wheel_rx = max(r * g.c, 0.05)
    if g.motor:  # body from rear wheel over the seat to the handlebar, engine block low
        xs, ys = b.pts([(rear, 0.9 * r), (rear + 0.15 * (front - rear), g.seat[1]), (g.bar[0], g.bar[1]), (front, r)])
        p.poly(xs, ys)
        b.rect(p, rear + 0.3 * (front - rear), 0.25 * g.seat[1], rear + 0.7 * (front - rear), 0.65 * g.seat[1])
    else:  # frame triangle-ish quad between the wheel hubs, seat and handlebar
        xs, ys = b.pts([(rear, r), (g.seat[0], g.seat[1]), (g.bar[0], g.bar[1]), (front, r)])
        p.poly(xs, ys)
    b.rect(p, g.bar[0] - g.bar_half_width, g.bar[1] - 0.04, g.bar[0] + g.bar_half_width, g.bar[1] + 0.03, min_size=True)
    b.ellipse(p, rear, r, wheel_rx, r, PART_WHEEL)
    b.ellipse(p, front, r, wheel_rx, r, PART_WHEEL)


def _draw_rider(p: _Painter, X, z, h, g: _BikeGeom) -> None:
    if not p.begin(RIDER, z):
        return
    b = _Billboard(p.cam, X, z)
    hx, hy = g.seat
    torso = 0.31 * h
    lean = (0.25 if g.motor else 0.15) * g.c * g.s
    sx, sy = hx + lean * h / 1.75, hy + torso
    tw = (0.13 + 0.07 * (1 - g.c)) * h / 1.75  # half torso width: broader from behind
    # legs from hip down to the pedal / footpeg
    xs, ys = b.pts([(hx - tw, hy + 0.05), (hx + tw, hy + 0.05), (g.pedal[0] + 0.06, g.pedal[1]), (g.pedal[0] - 0.06, g.pedal[1])])
    p.poly(xs, ys, PART_DARK)
    xs, ys = b.pts([(hx - tw, hy), (hx + tw, hy), (sx + tw * 1.1, sy), (sx - tw * 1.1, sy)])
    p.poly(xs, ys)
    # arm from shoulder to handlebar
    xs, ys = b.pts([(sx, sy - 0.02), (sx, sy - 0.14), (g.bar[0], g.bar[1] - 0.03), (g.bar[0], g.bar[1] + 0.05)])
    p.poly(xs, ys)
    b.ellipse(p, sx, sy + _HEAD_RY * h * 1.2, _HEAD_RX * h, _HEAD_RY * h, PART_PLAIN if g.motor else PART_SKIN)


def _draw_pole(p: _Painter, X, z, h, w, s_road, sign, light) -> None:
    """Pole at lateral X (``s_road`` = direction towards the road), optional sign and light.

    sign:  None or (shape, size, second_sign) with shape in {"rect", "circle", "triangle", "wide"}.
    light: None or (box_height, box_width, lit_part, arm_length or 0).
    """
    b = _Billboard(p.cam, X, z)
    arm = light[3] if light is not None else 0.0
    if p.begin(POLE, z):
        b.rect(p, -w / 2, 0.0, w / 2, h, min_size=True)
        if arm > 0:
            b.rect(p, 0.0, h - 0.12, s_road * arm, h, min_size=True)
    if light is not None and p.begin(TRAFFIC_LIGHT, z - 0.02):
        hl, lw, lit, _ = light
        lx = s_road * arm
        top = h - 0.05 if arm > 0 else h + 0.1  # hangs from the arm, or sits on the pole top
        b.rect(p, lx - lw / 2, top - hl, lx + lw / 2, top, min_size=True)
        k = {PART_LAMP_RED: 0, PART_LAMP_AMBER: 1, PART_LAMP_GREEN: 2}[lit]
        b.ellipse(p, lx, top - hl * (0.2 + 0.3 * k), 0.3 * lw, 0.3 * lw, lit)
    if sign is not None and p.begin(TRAFFIC_SIGN, z - 0.04):
        shape, size, second = sign
        top = h  # below the arm, or below a light sitting on the pole top
        if light is not None:
            top = h - 0.2 if arm > 0 else h - light[0]
        cy = top - size / 2
        centres = [cy] + ([cy - size * 1.1] if second else [])
        for k, y in enumerate(centres):
            sh = shape if k == 0 else "rect"
            if sh == "circle":
                b.ellipse(p, 0.0, y, size / 2, size / 2)
            elif sh == "triangle":
                xs, ys = b.pts([(-size / 2, y - size * 0.43), (size / 2, y - size * 0.43), (0.0, y + size * 0.43)])
                p.poly(xs, ys)
            elif sh == "wide":
                b.rect(p, -size, y - size * 0.3, size, y + size * 0.3, min_size=True)
            else:
                b.rect(p, -size / 2, y - size / 2, size / 2, y + size / 2, min_size=True)


def _draw_tree(p: _Painter, X, z, h, rc, trunk_w, blobs) -> None:
    if not p.begin(VEGETATION, z):
        return
    b = _Billboard(p.cam, X, z)
    b.rect(p, -trunk_w / 2, 0.0, trunk_w / 2, h - 1.5 * rc, PART_DARK, min_size=True)
    b.ellipse(p, 0.0, h - rc, rc, 1.1 * rc)
    for dx, dy, k in blobs:  # extra crown blobs make the outline irregular
        b.ellipse(p, dx * rc, h - rc + dy * rc, k * rc, k * rc * 1.1)


# --------------------------------------------------------------------------------------
# Background
# --------------------------------------------------------------------------------------


@dataclass
class _Background:
    sem: np.ndarray
    part: np.ndarray
    face: np.ndarray
    depth: np.ndarray
    piece: np.ndarray
    n_pieces: int = 0

    def new_piece(self) -> int:
        self.n_pieces += 1
        return self.n_pieces


def _paint_plane(bg: _Background, cam: _Camera, X, Z0, Z1, Y0, Y1, cls, pattern=None, top_profile=None) -> None:
    """Vertical plane at lateral X (metres, != 0) spanning depths Z0..Z1 and heights Y0..Y1.

    ``top_profile(Z)`` (metres -> 0..1) may scale the top height along the plane (tree rows).

    ``pattern(Y, Z)`` (arrays in metres of the covered box) may return a bool mask of
    PART_WINDOW / PART_DARK pixels: ``(mask, part)``.
    """
    xa, xb = cam.x(X, Z0), cam.x(X, Z1)
    c0, c1 = _span(min(xa, xb), max(xa, xb), cam.W)
    if c1 <= c0:
        return
    u = (np.arange(c0, c1, dtype=np.float32) + 0.5 - cam.vx) / X  # pixels per metre of each column
    ok = u > 1e-6
    if not ok.any():
        return
    u = np.where(ok, u, 1e-6)
    Z = cam.f / u
    Yt = Y1 * top_profile(Z) if top_profile is not None else Y1
    top = cam.y_h + (cam.h_c - Yt) * u
    bot = cam.y_h + (cam.h_c - Y0) * u
    r0, r1 = _span(float(top[ok].min()), float(bot[ok].max()), cam.H)
    if r1 <= r0:
        return
    ry = np.arange(r0, r1, dtype=np.float32)[:, None] + 0.5
    m = (ry >= top) & (ry < bot) & ok
    sl = (slice(r0, r1), slice(c0, c1))
    bg.sem[sl][m] = cls
    bg.face[sl][m] = FACE_LEFT if X > 0 else FACE_RIGHT
    bg.depth[sl] = np.where(m, Z[None, :], bg.depth[sl])
    bg.piece[sl][m] = bg.new_piece()
    bg.part[sl][m] = PART_PLAIN
    if pattern is not None:
        Y = cam.h_c - (ry - cam.y_h) / u
        pm, part = pattern(Y, Z[None, :])
        bg.part[sl][m & pm] = part


def _window_pattern(rng: np.random.Generator, p: SceneProfile, height: float):
    """Grid of windows on a facade (Y, along) in metres, plus wide shop windows at street level."""
    floor = _uniform(rng, p.floor_height_m)
    spacing = _uniform(rng, p.window_spacing_m)
    phase = float(rng.uniform(0, spacing))
    shops = rng.random() < 0.5

    def pattern(Y, A):
        fy = np.mod(Y, floor) / floor
        fa = np.mod(A + phase, spacing) / spacing
        upper = (Y > floor) & (Y < height - 0.8) & (fy > 0.3) & (fy < 0.75) & (fa > 0.25) & (fa < 0.7)
        if shops:
            upper |= (Y > 0.4) & (Y < 0.8 * floor) & (fa > 0.08) & (fa < 0.85)
        return upper, PART_WINDOW

    return pattern


def _fence_pattern(p: SceneProfile, height: float):
    def pattern(Y, Z):
        return (np.mod(Z, p.fence_bar_spacing_m) < 0.3 * p.fence_bar_spacing_m) | (Y > height - 0.12), PART_DARK

    return pattern


def _verge_segments(rng: np.random.Generator, p: SceneProfile, absent: frozenset[int], z_max: float):
    """Depth boundaries and classes of the verge segments of one side."""
    starts, classes = [0.0], []
    z = 0.0
    while True:
        grass = TERRAIN not in absent and rng.random() < p.terrain_verge_prob
        classes.append(TERRAIN if grass else SIDEWALK)
        z += _uniform(rng, p.verge_segment_m)
        if z >= z_max:
            break
        starts.append(z)
    return np.asarray(starts, dtype=np.float32), np.asarray(classes, dtype=np.uint8)


def _background(rng: np.random.Generator, cam: _Camera, st: _Street, p: SceneProfile, absent: frozenset[int]) -> _Background:
    H, W = cam.H, cam.W
    bg = _Background(
        sem=np.full((H, W), SKY, dtype=np.uint8),
        part=np.zeros((H, W), dtype=np.uint8),
        face=np.full((H, W), FACE_FRONT, dtype=np.uint8),
        depth=np.full((H, W), SKY_DEPTH_M, dtype=np.float32),
        piece=np.zeros((H, W), dtype=np.int32),
    )

    # ---- ground: every row below the horizon, classified by lateral distance to the road centre
    verges = [_verge_segments(rng, p, absent, st.z_end + 50.0) for _ in range(2)]
    patches = []
    for _ in range(_count(rng, p.terrain_patch_count) if TERRAIN not in absent else 0):
        s = 1 if rng.random() < 0.5 else -1
        sw = st.sidewalk[st.side_index(s)]
        z0 = _uniform(rng, (4.0, st.z_end))
        a = st.R + 0.4 * sw + 0.1
        patches.append((s, a, st.R + sw - 0.3, z0, z0 + _uniform(rng, p.terrain_patch_length_m)))
    markings = rng.random() < p.lane_marking_prob
    crosswalk = _uniform(rng, (8.0, 40.0)) if rng.random() < p.crosswalk_prob else None

    g0 = max(0, math.floor(cam.y_h - 0.5) + 1)  # first row whose centre is below the horizon
    if g0 < H:
        u = (np.arange(g0, H, dtype=np.float32) + 0.5 - cam.y_h) / cam.h_c  # pixels per metre
        zr = cam.f / u  # depth of each ground row
        lat = (np.arange(W, dtype=np.float32)[None, :] + 0.5 - cam.vx) / u[:, None] - st.x_c
        right = lat > 0
        alat = np.abs(lat)
        sidewalk_w = np.where(right, st.sidewalk[1], st.sidewalk[0])
        verge_cls = [cls[np.searchsorted(starts, zr, side="right") - 1] for starts, cls in verges]
        gsem = np.where(right, verge_cls[1][:, None], verge_cls[0][:, None])
        gsem = np.where(alat < st.R + sidewalk_w, SIDEWALK, gsem)
        for s, a, b, z0, z1 in patches:
            rows = (zr >= z0) & (zr < z1)
            gsem[rows[:, None] & (s * lat >= a) & (s * lat < b)] = TERRAIN
        on_road = alat < st.R
        gsem = np.where(on_road, ROAD, gsem).astype(np.uint8)
        gpart = np.zeros(gsem.shape, dtype=np.uint8)
        if markings:
            n = max(2, round(2 * st.R / p.lane_width_m))
            lane = 2 * st.R / n
            t = (lat + st.R) / lane
            line = np.abs(t - np.round(t)) * lane < p.marking_width_m / 2
            edge = (t < 0.5) | (t > n - 0.5)
            dash = (np.mod(zr, p.dash_period_m) < p.dash_duty * p.dash_period_m)[:, None]
            gpart[line & on_road & (edge | dash)] = PART_MARKING
        if crosswalk is not None:
            rows = ((zr >= crosswalk) & (zr < crosswalk + p.crosswalk_length_m))[:, None]
            stripes = np.mod(lat, 2 * p.crosswalk_stripe_m) < p.crosswalk_stripe_m
            gpart[rows & stripes & (alat < st.R - 0.3)] = PART_MARKING
        bg.sem[g0:] = gsem
        bg.part[g0:] = gpart
        bg.face[g0:] = FACE_UP
        bg.depth[g0:] = zr[:, None]

    # ---- far buildings closing the street at z_end (flat, facing the camera)
    z_e = st.z_end
    u_e = cam.f / z_e
    xl, xr = cam.visible_x_range(z_e)
    X = xl - _uniform(rng, (0.0, 10.0))
    while X < xr:
        width = _uniform(rng, p.far_building_width_m)
        if rng.random() >= p.far_gap_prob:
            h = _uniform(rng, p.far_building_height_m)
            windows = _window_pattern(rng, p, h) if rng.random() < p.window_prob else None
            c0, c1 = _span(cam.x(X, z_e), cam.x(X + width, z_e), W)
            r0, r1 = _span(cam.y(h, z_e), cam.y(0.0, z_e), H)
            if c1 > c0 and r1 > r0:
                sl = (slice(r0, r1), slice(c0, c1))
                bg.sem[sl] = BUILDING
                bg.face[sl] = FACE_FRONT
                bg.depth[sl] = z_e
                bg.piece[sl] = bg.new_piece()
                bg.part[sl] = PART_PLAIN
                if windows is not None:
                    Yg = cam.h_c - (np.arange(r0, r1, dtype=np.float32)[:, None] + 0.5 - cam.y_h) / u_e
                    Xg = (np.arange(c0, c1, dtype=np.float32)[None, :] + 0.5 - cam.vx) / u_e
                    wm, part = windows(Yg, Xg)
                    bg.part[sl][wm] = part
        X += width

    # ---- facades along both sides (or rows of trees), from the camera to z_end
    for s in (-1, 1):
        Xb = st.building_line(s)
        z = 0.5  # planes start just ahead of the camera (columns beyond the image are clipped)
        while z < z_e:
            z1 = min(z + _uniform(rng, p.building_length_m), z_e)
            if rng.random() < p.building_gap_prob and VEGETATION not in absent:
                crown = _uniform(rng, p.sizes.crown_radius) * 2 * p.object_scale
                phase = float(rng.uniform(0, 2 * math.pi))
                _paint_plane(bg, cam, Xb, z, z1, 0.0, _uniform(rng, p.tree_row_height_m), VEGETATION,
                             top_profile=lambda Z, c=crown, ph=phase: 0.8 + 0.2 * np.abs(np.cos(np.pi * Z / c + ph)))
            else:
                h = _uniform(rng, p.building_height_m)
                windows = _window_pattern(rng, p, h) if rng.random() < p.window_prob else None
                _paint_plane(bg, cam, Xb, z, z1, 0.0, h, BUILDING, windows)
            z = z1

    # ---- walls, fences and hedges just in front of the facades
    barriers = [
        (WALL, p.wall_prob, p.wall_count, p.wall_height_m),
        (FENCE, p.fence_prob, p.fence_count, p.fence_height_m),
        (VEGETATION, p.hedge_prob, p.hedge_count, p.hedge_height_m),
    ]
    for cls, prob, count, height in barriers:
        if cls in absent or rng.random() >= prob:
            continue
        for _ in range(_count(rng, count)):
            s = 1 if rng.random() < 0.5 else -1
            X = st.building_line(s) - s * p.barrier_setback_m
            z0 = _uniform(rng, (1.0, 0.8 * z_e))
            z1 = min(z0 + _uniform(rng, p.barrier_length_m), z_e)
            h = _uniform(rng, height)
            _paint_plane(bg, cam, X, z0, z1, 0.0, h, cls, _fence_pattern(p, h) if cls == FENCE else None)

    bg.sem = _area_lut(absent)[bg.sem]
    return bg


# --------------------------------------------------------------------------------------
# Objects
# --------------------------------------------------------------------------------------

Footprint = tuple[float, float, float, float]
"""(X0, X1, Z0, Z1): ground rectangle of an object in metres."""


@dataclass
class _Obj:
    key: float  # painter's sort key: objects are painted by decreasing key (far first)
    draw: Callable[[_Painter], None]
    footprint: Footprint | None
    forced_cls: int | None = None  # TRUCK / TRAIN when it must stay visible


def _overlap(a: Footprint, b: Footprint, margin: float) -> bool:
    return a[0] < b[1] + margin and b[0] < a[1] + margin and a[2] < b[3] + margin and b[2] < a[3] + margin


class _Placer:
    """Places objects on the ground without 3-D overlaps (rejection sampling)."""

    def __init__(self, rng: np.random.Generator, cam: _Camera, st: _Street, p: SceneProfile, absent: frozenset[int]):
        self.rng, self.cam, self.st, self.p, self.absent = rng, cam, st, p, absent
        self.sizes = p.sizes
        self.k = p.object_scale
        self.objs: list[_Obj] = []
        z_cap = min(p.max_object_depth_m, st.z_end - 3.0)
        self.z_cap = z_cap
        lo, hi = p.contact_row_range
        self.row_range = (max(lo, cam.row_frac_of_depth(z_cap)), hi)

    # -- sampling helpers
    def size(self, r: Range) -> float:
        return _uniform(self.rng, r) * self.k

    def depth(self, row_range: Range | None = None) -> float:
        lo, hi = row_range or self.row_range
        lo = max(lo, self.cam.row_frac_of_depth(self.z_cap))
        hi = max(hi, lo)
        t = self.rng.random() ** self.p.depth_bias
        return self.cam.depth_of_row_frac(lo + (hi - lo) * t)

    def side(self) -> int:
        return 1 if self.rng.random() < 0.5 else -1

    def in_view(self, X0: float, X1: float, Z: float) -> bool:
        x0, x1 = self.cam.x(X0, Z), self.cam.x(X1, Z)
        return x1 > 0.02 * self.cam.W and x0 < 0.98 * self.cam.W

    def free(self, fp: Footprint, margin: float = 0.4, only_forced: bool = False) -> bool:
        return not any(
            o.footprint is not None and _overlap(fp, o.footprint, margin)
            for o in self.objs
            if not only_forced or o.forced_cls is not None
        )

    def lane_x(self, width: float, parked: bool) -> float:
        st = self.st
        if parked:  # at the kerb of a random side
            s = self.side()
            return st.kerb(s) - s * (width / 2 + 0.25)
        n = max(2, round(2 * st.R / self.p.lane_width_m))
        lane = 2 * st.R / n
        centre = st.x_c - st.R + (int(self.rng.integers(n)) + 0.5) * lane
        return centre + float(self.rng.uniform(-0.3, 0.3)) * min(1.0, max(0.0, lane - width) / 0.6)

    def try_place(self, make: Callable[[bool], _Obj | None], near: bool = False) -> _Obj | None:
        """Call ``make`` up to max_place_attempts times until it returns a free object; keep it."""
        for _ in range(self.p.max_place_attempts):
            obj = make(near)
            if obj is not None and (obj.footprint is None or self.free(obj.footprint)):
                self.objs.append(obj)
                return obj
        return None

    # -- vehicles
    def car(self, near: bool) -> _Obj | None:
        z = self.size
        w, l = z(self.sizes.car_width), z(self.sizes.car_length)
        hb, hc = z(self.sizes.car_body_height), z(self.sizes.car_cabin_height)
        parked = self.rng.random() < self.p.parked_car_frac
        xc = self.lane_x(w, parked)
        d = self.depth()
        if not self.in_view(xc - w / 2, xc + w / 2, d):
            return None
        draw = partial(_draw_car, xc=xc, z=d, w=w, l=l, hb=hb, hcab=hc, r=self.sizes.car_wheel_radius * self.k)
        return _Obj(d, draw, (xc - w / 2, xc + w / 2, d, d + l))

    def truck(self, near: bool) -> _Obj | None:
        S, z = self.sizes, self.size
        w = z(S.truck_width)
        lcab, hcab, lcargo, hcargo = z(S.truck_cab_length), z(S.truck_cab_height), z(S.truck_cargo_length), z(S.truck_cargo_height)
        parked = (not near) and self.rng.random() < 0.3 * self.p.parked_car_frac
        xc = self.lane_x(w, parked)
        oncoming = bool(self.rng.random() < 0.5)
        d = self.depth(self.p.forced_contact_row_range if near else None)
        if not self.in_view(xc - w / 2, xc + w / 2, d):
            return None
        draw = partial(_draw_truck, xc=xc, z=d, w=w, lcab=lcab, hcab=hcab, lcargo=lcargo, hcargo=hcargo,
                       r=S.truck_wheel_radius * self.k, oncoming=oncoming)
        return _Obj(d, draw, (xc - w / 2, xc + w / 2, d, d + lcab + lcargo + 0.3))

    def bus(self, near: bool) -> _Obj | None:
        S, z = self.sizes, self.size
        w, l, h = z(S.bus_width), z(S.bus_length), z(S.bus_height)
        xc = self.lane_x(w, False)
        d = self.depth()
        if not self.in_view(xc - w / 2, xc + w / 2, d):
            return None
        draw = partial(_draw_bus, xc=xc, z=d, w=w, l=l, h=h, r=S.truck_wheel_radius * self.k)
        return _Obj(d, draw, (xc - w / 2, xc + w / 2, d, d + l))

    def train(self, near: bool) -> _Obj | None:
        S, z, st = self.sizes, self.size, self.st
        w, h = z(S.train_width), z(S.train_height)
        n = _count(self.rng, S.train_cars)
        lengths = [z(S.train_car_length) for _ in range(n)]
        gap = S.train_car_gap * self.k
        total = sum(lengths) + gap * (n - 1)
        mode = self.p.train_mode
        if mode == "mixed":
            mode = "crossing" if self.rng.random() < 0.5 else "along"
        if mode == "crossing":
            # side view at depth d, crossing the street between the building lines
            d = self.depth(self.p.forced_contact_row_range if near else (self.row_range[0], min(self.row_range[1], 0.5)))
            vl, vr = self.cam.visible_x_range(d)
            centre = float(self.rng.uniform(0.7 * vl + 0.3 * vr, 0.3 * vl + 0.7 * vr))
            X = centre - total / 2
            lo, hi = st.building_line(-1), st.building_line(1)
            cars = []
            for length in lengths:
                a, b = max(X, lo), min(X + length, hi)
                if b - a > 1.0:
                    cars.append((a, b, d, d + w))
                X += length + gap
            if not cars:
                return None
            fp = (cars[0][0], cars[-1][1], d, d + w)
        else:
            # tram driving along the street in the outermost lane of one side
            s = self.side()
            xc = st.kerb(s) - s * (w / 2 + 0.3)
            d = self.depth(self.p.forced_contact_row_range if near else None)
            cars, Z = [], d
            for length in lengths:
                cars.append((xc - w / 2, xc + w / 2, Z, Z + length))
                Z += length + gap
            fp = (xc - w / 2, xc + w / 2, d, d + total)
        if not self.in_view(fp[0], fp[1], d):
            return None
        draw = partial(_draw_train, cars=cars, h=h, front_z=d)
        return _Obj(d, draw, fp)

    # -- persons and bikes
    def person(self, near: bool, at: tuple[float, float] | None = None) -> _Obj | None:
        st = self.st
        h = self.size(self.sizes.person_height)
        if at is not None:
            X, d = at[0] + float(self.rng.uniform(-0.9, 0.9)), at[1] + float(self.rng.uniform(-1.0, 1.0))
            d = max(d, self.cam.depth_of_row_frac(self.row_range[1]))
        else:
            d = self.depth()
            if self.rng.random() < self.p.person_on_road_frac:
                X = st.x_c + float(self.rng.uniform(-st.R + 0.4, st.R - 0.4))
            else:
                s = self.side()
                X = st.kerb(s) + s * float(self.rng.uniform(0.3, max(0.4, st.sidewalk[st.side_index(s)] - 0.3)))
        if not self.in_view(X - 0.3, X + 0.3, d):
            return None
        stride = float(self.rng.uniform(0.12, 0.32)) * h
        draw = partial(_draw_person, X=X, z=d, h=h, stride=stride)
        return _Obj(d, draw, (X - 0.25, X + 0.25, d - 0.25, d + 0.25))

    def _bike(self, motor: bool) -> _BikeGeom:
        S = self.sizes
        if motor:
            return _bike_geom(self.rng, True, self.size(S.motorcycle_length), S.motorcycle_wheel_radius * self.k, self.k)
        return _bike_geom(self.rng, False, self.size(S.bicycle_length), S.bicycle_wheel_radius * self.k, self.k)

    def _bike_class(self, motor_prob: float) -> bool | None:
        """True = motorcycle, False = bicycle, None when both are absent."""
        motor = self.rng.random() < motor_prob
        if (MOTORCYCLE if motor else BICYCLE) in self.absent:
            motor = not motor
        if (MOTORCYCLE if motor else BICYCLE) in self.absent:
            return None
        return motor

    def rider(self, near: bool) -> list[_Obj] | None:
        st = self.st
        motor = self._bike_class(self.p.motorcycle_share)
        if motor is None:
            return None
        g = self._bike(motor)
        h = self.size(self.sizes.person_height)
        d = self.depth()
        s = self.side()
        if self.rng.random() < 0.75:  # on the road near the kerb, else on the sidewalk
            X = st.kerb(s) - s * float(self.rng.uniform(0.6, min(2.5, st.R)))
        else:
            X = st.kerb(s) + s * float(self.rng.uniform(0.4, max(0.5, st.sidewalk[st.side_index(s)] - 0.4)))
        if not self.in_view(X - 0.5, X + 0.5, d):
            return None
        half = g.half_base + g.r
        fp = (X - 0.45, X + 0.45, d - half, d + half)
        if not self.free(fp):
            return None
        bike = _Obj(d, partial(_draw_bike, X=X, z=d, g=g), fp)
        rider = _Obj(d - 0.05, partial(_draw_rider, X=X, z=d - 0.05, h=h, g=g), None)
        return [bike, rider]

    def parked_bike(self, near: bool, motor: bool) -> _Obj | None:
        st = self.st
        g = self._bike(motor)
        d = self.depth()
        s = self.side()
        X = st.kerb(s) + s * float(self.rng.uniform(0.3, 1.0))
        if not self.in_view(X - 0.5, X + 0.5, d):
            return None
        draw = partial(_draw_bike, X=X, z=d, g=g)
        return _Obj(d, draw, (X - 0.35, X + 0.35, d - 0.6, d + 0.6))

    # -- props
    def pole(self, near: bool) -> _Obj | None:
        S, st, rng = self.sizes, self.st, self.rng
        s = self.side()
        X = st.kerb(s) + s * float(rng.uniform(0.3, 0.7))
        d = self.depth()
        if not self.in_view(X - 0.3, X + 0.3, d):
            return None
        h, w = self.size(S.pole_height), self.size(S.pole_width)
        light = None
        if TRAFFIC_LIGHT not in self.absent and rng.random() < self.p.light_prob:
            lit = (PART_LAMP_RED, PART_LAMP_AMBER, PART_LAMP_GREEN)[int(rng.integers(3))]
            arm = self.size(S.light_arm_length) if rng.random() < self.p.light_arm_prob else 0.0
            light = (self.size(S.light_height), S.light_width * self.k, lit, arm)
            h = max(h, 3.5 * self.k)
        sign = None
        if TRAFFIC_SIGN not in self.absent and (light is None or rng.random() < 0.5) and rng.random() < self.p.sign_prob:
            shape = ("rect", "circle", "triangle", "wide")[int(rng.integers(4))]
            sign = (shape, self.size(S.sign_size), rng.random() < self.p.second_sign_prob)
        draw = partial(_draw_pole, X=X, z=d, h=h, w=w, s_road=-s, sign=sign, light=light)
        return _Obj(d, draw, (X - 0.2, X + 0.2, d - 0.2, d + 0.2))

    def tree(self, near: bool) -> _Obj | None:
        S, st, rng = self.sizes, self.st, self.rng
        s = self.side()
        i = st.side_index(s)
        if st.verge[i] > 1.0 and rng.random() < 0.6:
            X = st.sidewalk_outer(s) + s * 0.5 * st.verge[i]
        else:
            X = st.sidewalk_outer(s) - s * float(rng.uniform(0.4, 0.9))
        d = self.depth()
        h, rc = self.size(S.tree_height), self.size(S.crown_radius)
        rc = min(rc, 0.45 * h)
        if not self.in_view(X - rc, X + rc, d):
            return None
        blobs = [
            (float(rng.uniform(-0.7, 0.7)), float(rng.uniform(-0.5, 0.4)), float(rng.uniform(0.5, 0.8)))
            for _ in range(int(rng.integers(1, 4)))
        ]
        draw = partial(_draw_tree, X=X, z=d, h=h, rc=rc, trunk_w=self.size(S.trunk_width), blobs=blobs)
        return _Obj(d, draw, (X - 0.3, X + 0.3, d - 0.3, d + 0.3))


def _place_objects(pl: _Placer, p: SceneProfile, absent: frozenset[int], want_truck: bool, want_train: bool) -> None:
    """All objects of one scene, biggest first so that they find free spots."""
    rng = pl.rng
    if want_train:
        for _ in range(_count(rng, p.train_count)):
            obj = pl.try_place(pl.train)
            if obj is not None:
                obj.forced_cls = TRAIN
    if want_truck:
        for _ in range(_count(rng, p.truck_count)):
            obj = pl.try_place(pl.truck)
            if obj is not None:
                obj.forced_cls = TRUCK
    if BUS not in absent and rng.random() < p.bus_prob:
        for _ in range(_count(rng, p.bus_count)):
            pl.try_place(pl.bus)
    if CAR not in absent:
        for _ in range(_count(rng, p.car_count)):
            pl.try_place(pl.car)
    for _ in range(_count(rng, p.rider_count)):
        for _attempt in range(p.max_place_attempts):
            pair = pl.rider(False)
            if pair is not None:
                pl.objs.extend(pair)
                break
    if PERSON not in absent:
        n = _count(rng, p.person_count)
        while n > 0:
            obj = pl.try_place(pl.person)
            n -= 1
            if obj is not None and n > 0 and rng.random() < p.person_group_prob:
                anchor = (0.5 * (obj.footprint[0] + obj.footprint[1]), obj.key)
                for _ in range(min(n, int(rng.integers(1, 3)))):
                    pl.try_place(lambda near, a=anchor: pl.person(near, at=a))
                    n -= 1
    for motor, count in ((False, p.parked_bicycle_count), (True, p.parked_motorcycle_count)):
        if (MOTORCYCLE if motor else BICYCLE) not in absent:
            for _ in range(_count(rng, count)):
                pl.try_place(lambda near, m=motor: pl.parked_bike(near, m))
    for _ in range(_count(rng, p.pole_count)):
        pl.try_place(pl.pole)
    if VEGETATION not in absent:
        for _ in range(_count(rng, p.tree_count)):
            pl.try_place(pl.tree)


def _paint(bg: _Background, cam: _Camera, objs: list[_Obj], absent: frozenset[int]) -> _Painter:
    painter = _Painter(cam, absent, first_piece=bg.n_pieces + 1)
    for obj in sorted(objs, key=lambda o: -o.key):  # stable: ties keep placement order
        obj.draw(painter)
    return painter


def _replace_forced(pl: _Placer, cls: int, last: bool) -> None:
    """Move a hidden forced object of class ``cls`` near the camera, clearing its spot."""
    make = pl.truck if cls == TRUCK else pl.train
    pl.objs = [o for o in pl.objs if o.forced_cls != cls]
    obj = None
    for _ in range(pl.p.max_place_attempts):
        obj = make(True)
        if obj is not None and pl.free(obj.footprint, only_forced=True):
            break
        obj = None
    if obj is None:  # no spot free of other forced objects: take any in-view placement
        for _ in range(pl.p.max_place_attempts):
            obj = make(True)
            if obj is not None:
                break
    if obj is None:
        return
    obj.forced_cls = cls
    pl.objs = [o for o in pl.objs if o.forced_cls is not None or o.footprint is None or not _overlap(o.footprint, obj.footprint, 0.4)]
    if last:
        obj.key = -math.inf  # painted over everything
    pl.objs.append(obj)


def generate_scene(
    rng: np.random.Generator,
    height: int,
    width: int,
    profile: SceneProfile = DEFAULT_PROFILE,
    include_truck: bool | None = None,
    include_train: bool | None = None,
) -> Scene:
    """Draw one random toy street scene of ``height`` x ``width`` pixels.

    include_truck / include_train: None = decide randomly (profile.truck_prob / train_prob);
    True = at least one truck / train visible with >= profile.min_forced_visible_frac of the
    pixels (re-placed nearer when hidden by other objects); False = none at all.
    Deterministic for the same generator state and arguments.
    """
    if height < 8 or width < 8:
        raise ValueError(f"image size must be at least 8x8, got {height}x{width}")
    absent = frozenset(class_id(n) for n in profile.absent_classes)
    for cls, forced in ((TRUCK, include_truck), (TRAIN, include_train)):
        if forced and cls in absent:
            raise ValueError(f"include_{CLASS_NAMES[cls]}=True but {CLASS_NAMES[cls]!r} is in absent_classes")
    want_truck = include_truck if include_truck is not None else (TRUCK not in absent and rng.random() < profile.truck_prob)
    want_train = include_train if include_train is not None else (TRAIN not in absent and rng.random() < profile.train_prob)

    cam = _sample_camera(rng, height, width, profile)
    street = _sample_street(rng, profile)
    bg = _background(rng, cam, street, profile, absent)
    placer = _Placer(rng, cam, street, profile, absent)
    _place_objects(placer, profile, absent, bool(want_truck), bool(want_train))

    # Forced classes must end up visible; re-place hidden ones nearer, finally on top of all.
    forced = [c for c, f in ((TRUCK, include_truck), (TRAIN, include_train)) if f]
    min_px = max(1, math.ceil(profile.min_forced_visible_frac * height * width))
    for attempt in range(profile.max_place_attempts + 1):
        painter = _paint(bg, cam, placer.objs, absent)
        if not forced:
            break
        inst_lut = np.array([a[1] for a in painter.attrs], dtype=np.int32)
        counts = np.bincount(inst_lut[painter.pid].ravel(), minlength=len(painter.instance_classes) + 1)
        missing = [
            c for c in forced
            if not any(counts[i] >= min_px for i, ic in painter.instance_classes.items() if ic == c)
        ]
        if not missing:
            break
        if attempt == profile.max_place_attempts:
            raise RuntimeError(f"could not make {[CLASS_NAMES[c] for c in missing]} visible")
        for c in missing:
            _replace_forced(placer, c, last=attempt >= profile.max_place_attempts - 2)

    return _compose(bg, painter, cam)


def _compose(bg: _Background, painter: _Painter, cam: _Camera) -> Scene:
    """Merge background and painted objects; renumber the visible instances 1..K."""
    attrs = painter.attrs
    pid = painter.pid
    has = pid > 0
    lut_sem = np.array([a[0] for a in attrs], dtype=np.uint8)
    lut_inst = np.array([a[1] for a in attrs], dtype=np.int32)
    lut_part = np.array([a[2] for a in attrs], dtype=np.uint8)
    lut_face = np.array([a[3] for a in attrs], dtype=np.uint8)
    lut_depth = np.array([a[4] for a in attrs], dtype=np.float32)
    lut_piece = np.array([a[5] for a in attrs], dtype=np.int32)

    semantic = np.where(has, lut_sem[pid], bg.sem)
    provisional = lut_inst[pid]
    n = len(painter.instance_classes)
    visible = np.bincount(provisional.ravel(), minlength=n + 1) > 0
    visible[0] = False
    renumber = np.zeros(n + 1, dtype=np.int32)
    ids = np.flatnonzero(visible)
    renumber[ids] = np.arange(1, len(ids) + 1, dtype=np.int32)
    instances = renumber[provisional]
    instance_classes = {int(renumber[i]): painter.instance_classes[int(i)] for i in ids}

    return Scene(
        semantic=semantic.astype(np.uint8),
        instances=instances,
        instance_classes=instance_classes,
        parts=np.where(has, lut_part[pid], bg.part),
        facing=np.where(has, lut_face[pid], bg.face),
        depth=np.where(has, lut_depth[pid], bg.depth).astype(np.float32),
        pieces=np.where(has, lut_piece[pid], bg.piece),
        horizon_y=cam.y_h,
    )


__all__ = [
    "DEFAULT_PROFILE",
    "FACE_FRONT",
    "FACE_LEFT",
    "FACE_RIGHT",
    "FACE_UP",
    "NUM_PARTS",
    "ObjectSizes",
    "PART_DARK",
    "PART_GLASS",
    "PART_LAMP_AMBER",
    "PART_LAMP_GREEN",
    "PART_LAMP_RED",
    "PART_MARKING",
    "PART_PLAIN",
    "PART_SKIN",
    "PART_WHEEL",
    "PART_WINDOW",
    "PROFILES",
    "SKY_DEPTH_M",
    "Scene",
    "SceneProfile",
    "generate_scene",
]
