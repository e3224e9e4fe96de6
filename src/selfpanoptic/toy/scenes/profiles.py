"""Scene geometry parameters: :class:`SceneProfile` (every knob of a domain's layouts), object
sizes, the profiles of the three toy domains, and the helpers that draw values from their ranges."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from selfpanoptic.classes import class_id


Range = tuple[float, float]
"""(low, high) of a uniformly sampled value."""
IntRange = tuple[int, int]
"""(low, high) of a uniformly sampled integer, both included."""


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
    ``*draw_count`` values are inclusive integer ranges.
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


def draw_uniform(rng: np.random.Generator, r: Range) -> float:
    """One uniform draw from ``[r[0], r[1])``."""
    return float(rng.uniform(r[0], r[1]))


def draw_count(rng: np.random.Generator, r: IntRange) -> int:
    """One integer from ``r[0]..r[1]``, both included."""
    return int(rng.integers(r[0], r[1] + 1))
