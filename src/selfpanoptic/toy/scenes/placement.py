"""Placement of the objects of a scene on the ground: the :class:`Placer` draws each object's
position and size without 3-D overlaps, :func:`place_objects` fills a scene and
:func:`replace_forced` moves a hidden forced truck / train nearer."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial
from typing import Callable

import numpy as np

from .camera import Camera, Street
from .codes import (
    BICYCLE,
    BUS,
    CAR,
    MOTORCYCLE,
    PART_LAMP_AMBER,
    PART_LAMP_GREEN,
    PART_LAMP_RED,
    PERSON,
    TRAFFIC_LIGHT,
    TRAFFIC_SIGN,
    TRAIN,
    TRUCK,
    VEGETATION,
)
from .people import BikeGeom, bike_geom, draw_bike, draw_person, draw_rider
from .profiles import Range, SceneProfile, draw_count, draw_uniform
from .raster import Painter
from .street_furniture import draw_pole, draw_tree
from .vehicles import draw_bus, draw_car, draw_train, draw_truck


Footprint = tuple[float, float, float, float]
"""(X0, X1, Z0, Z1): ground rectangle of an object in metres."""


@dataclass
class PlacedObject:
    """An object placed in the scene, waiting to be drawn (``draw(painter)``) in depth order."""

    key: float  # painter's sort key: objects are painted by decreasing key (far first)
    draw: Callable[[Painter], None]
    footprint: Footprint | None
    forced_cls: int | None = None  # TRUCK / TRAIN when it must stay visible


def overlap(a: Footprint, b: Footprint, margin: float) -> bool:
    """Whether footprint ``a`` overlaps ``b`` grown by ``margin`` metres on every side."""
    return a[0] < b[1] + margin and b[0] < a[1] + margin and a[2] < b[3] + margin and b[2] < a[3] + margin


class Placer:
    """Places objects on the ground without 3-D overlaps (rejection sampling)."""

    def __init__(self, rng: np.random.Generator, cam: Camera, st: Street, p: SceneProfile, absent: frozenset[int]):
        self.rng, self.cam, self.st, self.p, self.absent = rng, cam, st, p, absent
        self.sizes = p.sizes
        self.k = p.object_scale
        self.objs: list[PlacedObject] = []
        z_cap = min(p.max_object_depth_m, st.z_end - 3.0)
        self.z_cap = z_cap
        lo, hi = p.contact_row_range
        self.row_range = (max(lo, cam.row_frac_of_depth(z_cap)), hi)

    # -- sampling helpers
    def size(self, r: Range) -> float:
        return draw_uniform(self.rng, r) * self.k

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
            o.footprint is not None and overlap(fp, o.footprint, margin)
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

    def try_place(self, make: Callable[[bool], PlacedObject | None], near: bool = False) -> PlacedObject | None:
        """Call ``make`` up to max_place_attempts times until it returns a free object; keep it."""
        for _ in range(self.p.max_place_attempts):
            obj = make(near)
            if obj is not None and (obj.footprint is None or self.free(obj.footprint)):
                self.objs.append(obj)
                return obj
        return None

    # -- vehicles
    def car(self, near: bool) -> PlacedObject | None:
        z = self.size
        w, l = z(self.sizes.car_width), z(self.sizes.car_length)
        hb, hc = z(self.sizes.car_body_height), z(self.sizes.car_cabin_height)
        parked = self.rng.random() < self.p.parked_car_frac
        xc = self.lane_x(w, parked)
        d = self.depth()
        if not self.in_view(xc - w / 2, xc + w / 2, d):
            return None
        draw = partial(draw_car, xc=xc, z=d, w=w, l=l, hb=hb, hcab=hc, r=self.sizes.car_wheel_radius * self.k)
        return PlacedObject(d, draw, (xc - w / 2, xc + w / 2, d, d + l))

    def truck(self, near: bool) -> PlacedObject | None:
        S, z = self.sizes, self.size
        w = z(S.truck_width)
        lcab, hcab, lcargo, hcargo = z(S.truck_cab_length), z(S.truck_cab_height), z(S.truck_cargo_length), z(S.truck_cargo_height)
        parked = (not near) and self.rng.random() < 0.3 * self.p.parked_car_frac
        xc = self.lane_x(w, parked)
        oncoming = bool(self.rng.random() < 0.5)
        d = self.depth(self.p.forced_contact_row_range if near else None)
        if not self.in_view(xc - w / 2, xc + w / 2, d):
            return None
        draw = partial(draw_truck, xc=xc, z=d, w=w, lcab=lcab, hcab=hcab, lcargo=lcargo, hcargo=hcargo,
                       r=S.truck_wheel_radius * self.k, oncoming=oncoming)
        return PlacedObject(d, draw, (xc - w / 2, xc + w / 2, d, d + lcab + lcargo + 0.3))

    def bus(self, near: bool) -> PlacedObject | None:
        S, z = self.sizes, self.size
        w, l, h = z(S.bus_width), z(S.bus_length), z(S.bus_height)
        xc = self.lane_x(w, False)
        d = self.depth()
        if not self.in_view(xc - w / 2, xc + w / 2, d):
            return None
        draw = partial(draw_bus, xc=xc, z=d, w=w, l=l, h=h, r=S.truck_wheel_radius * self.k)
        return PlacedObject(d, draw, (xc - w / 2, xc + w / 2, d, d + l))

    def train(self, near: bool) -> PlacedObject | None:
        S, z, st = self.sizes, self.size, self.st
        w, h = z(S.train_width), z(S.train_height)
        n = draw_count(self.rng, S.train_cars)
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
        draw = partial(draw_train, cars=cars, h=h, front_z=d)
        return PlacedObject(d, draw, fp)

    # -- persons and bikes
    def person(self, near: bool, at: tuple[float, float] | None = None) -> PlacedObject | None:
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
        draw = partial(draw_person, X=X, z=d, h=h, stride=stride)
        return PlacedObject(d, draw, (X - 0.25, X + 0.25, d - 0.25, d + 0.25))

    def _bike(self, motor: bool) -> BikeGeom:
        S = self.sizes
        if motor:
            return bike_geom(self.rng, True, self.size(S.motorcycle_length), S.motorcycle_wheel_radius * self.k, self.k)
        return bike_geom(self.rng, False, self.size(S.bicycle_length), S.bicycle_wheel_radius * self.k, self.k)

    def _bike_class(self, motor_prob: float) -> bool | None:
        """True = motorcycle, False = bicycle, None when both are absent."""
        motor = self.rng.random() < motor_prob
        if (MOTORCYCLE if motor else BICYCLE) in self.absent:
            motor = not motor
        if (MOTORCYCLE if motor else BICYCLE) in self.absent:
            return None
        return motor

    def rider(self, near: bool) -> list[PlacedObject] | None:
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
        bike = PlacedObject(d, partial(draw_bike, X=X, z=d, g=g), fp)
        rider = PlacedObject(d - 0.05, partial(draw_rider, X=X, z=d - 0.05, h=h, g=g), None)
        return [bike, rider]

    def parked_bike(self, near: bool, motor: bool) -> PlacedObject | None:
        st = self.st
        g = self._bike(motor)
        d = self.depth()
        s = self.side()
        X = st.kerb(s) + s * float(self.rng.uniform(0.3, 1.0))
        if not self.in_view(X - 0.5, X + 0.5, d):
            return None
        draw = partial(draw_bike, X=X, z=d, g=g)
        return PlacedObject(d, draw, (X - 0.35, X + 0.35, d - 0.6, d + 0.6))

    # -- props
    def pole(self, near: bool) -> PlacedObject | None:
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
        draw = partial(draw_pole, X=X, z=d, h=h, w=w, s_road=-s, sign=sign, light=light)
        return PlacedObject(d, draw, (X - 0.2, X + 0.2, d - 0.2, d + 0.2))

    def tree(self, near: bool) -> PlacedObject | None:
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
        draw = partial(draw_tree, X=X, z=d, h=h, rc=rc, trunk_w=self.size(S.trunk_width), blobs=blobs)
        return PlacedObject(d, draw, (X - 0.3, X + 0.3, d - 0.3, d + 0.3))


def place_objects(pl: Placer, p: SceneProfile, absent: frozenset[int], want_truck: bool, want_train: bool) -> None:
    """All objects of one scene, biggest first so that they find free spots."""
    rng = pl.rng
    if want_train:
        for _ in range(draw_count(rng, p.train_count)):
            obj = pl.try_place(pl.train)
            if obj is not None:
                obj.forced_cls = TRAIN
    if want_truck:
        for _ in range(draw_count(rng, p.truck_count)):
            obj = pl.try_place(pl.truck)
            if obj is not None:
                obj.forced_cls = TRUCK
    if BUS not in absent and rng.random() < p.bus_prob:
        for _ in range(draw_count(rng, p.bus_count)):
            pl.try_place(pl.bus)
    if CAR not in absent:
        for _ in range(draw_count(rng, p.car_count)):
            pl.try_place(pl.car)
    for _ in range(draw_count(rng, p.rider_count)):
        for _attempt in range(p.max_place_attempts):
            pair = pl.rider(False)
            if pair is not None:
                pl.objs.extend(pair)
                break
    if PERSON not in absent:
        n = draw_count(rng, p.person_count)
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
            for _ in range(draw_count(rng, count)):
                pl.try_place(lambda near, m=motor: pl.parked_bike(near, m))
    for _ in range(draw_count(rng, p.pole_count)):
        pl.try_place(pl.pole)
    if VEGETATION not in absent:
        for _ in range(draw_count(rng, p.tree_count)):
            pl.try_place(pl.tree)


def replace_forced(pl: Placer, cls: int, last: bool) -> None:
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
    pl.objs = [o for o in pl.objs if o.forced_cls is not None or o.footprint is None or not overlap(o.footprint, obj.footprint, 0.4)]
    if last:
        obj.key = -math.inf  # painted over everything
    pl.objs.append(obj)
