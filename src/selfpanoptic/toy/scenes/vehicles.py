"""Drawers of the vehicles (cars, trucks, buses, trains) as 3-D boxes with wheels, glass and lamps."""

from __future__ import annotations

from .codes import BUS, CAR, FACE_FRONT, PART_GLASS, PART_LAMP_RED, PART_WHEEL, TRAIN, TRUCK
from .primitives import box, front_face, side_face, visible_side
from .raster import Painter


def wheels(p: Painter, X0, X1, Z0, Z1, r, axle_inset) -> None:
    """Dark tyre blocks at the bottom corners of the front face and wheel ellipses on the side."""
    tyre = min(0.3, 0.2 * (X1 - X0))
    front_face(p, X0, X0 + tyre, 0.0, r, Z0, PART_WHEEL)
    front_face(p, X1 - tyre, X1, 0.0, r, Z0, PART_WHEEL)
    xs = visible_side(X0, X1)
    if xs is None:
        return
    c = p.cam
    for zw in (Z0 + axle_inset, Z1 - axle_inset):
        # foreshortened: the side plane recedes, so a wheel is narrower than tall
        rx = r * c.f * abs(xs) / (zw * zw)
        p.ellipse(c.x(xs, zw), c.y(r, zw), max(rx, 0.3), r * c.f / zw, PART_WHEEL, FACE_FRONT)


def draw_car(p: Painter, xc, z, w, l, hb, hcab, r) -> None:
    if not p.begin(CAR, z):
        return
    X0, X1, Z1 = xc - w / 2, xc + w / 2, z + l
    box(p, X0, X1, 0.0, hb, z, Z1)
    wheels(p, X0, X1, z, Z1, r, 0.2 * l)
    lamp = 0.15 * w
    front_face(p, X0 + 0.05, X0 + 0.05 + lamp, hb - 0.28, hb - 0.12, z, PART_LAMP_RED)
    front_face(p, X1 - 0.05 - lamp, X1 - 0.05, hb - 0.28, hb - 0.12, z, PART_LAMP_RED)
    # cabin: narrower and set back, mostly glass
    cx0, cx1, cz0, cz1 = X0 + 0.1, X1 - 0.1, z + 0.25 * l, Z1 - 0.22 * l
    box(p, cx0, cx1, hb, hb + hcab, cz0, cz1)
    front_face(p, cx0 + 0.1, cx1 - 0.1, hb + 0.04, hb + hcab - 0.07, cz0, PART_GLASS)
    xs = visible_side(cx0, cx1)
    if xs is not None:
        side_face(p, xs, hb + 0.04, hb + hcab - 0.07, cz0 + 0.15, cz1 - 0.15, PART_GLASS)


def draw_truck(p: Painter, xc, z, w, lcab, hcab, lcargo, hcargo, r, oncoming) -> None:
    if not p.begin(TRUCK, z):
        return
    X0, X1 = xc - w / 2, xc + w / 2
    gap = 0.3
    if oncoming:  # cab in front, cargo box behind
        parts = [("cargo", z + lcab + gap, lcargo, hcargo), ("cab", z, lcab, hcab)]
    else:  # driving away: we see the back of the cargo box, the cab further ahead
        parts = [("cab", z + lcargo + gap, lcab, hcab), ("cargo", z, lcargo, hcargo)]
    for name, z0, length, h in parts:  # far part first
        box(p, X0, X1, 0.0, h, z0, z0 + length)
        wheels(p, X0, X1, z0, z0 + length, r, min(0.25 * length, 1.2))
        if name == "cab":
            if oncoming:
                front_face(p, X0 + 0.15, X1 - 0.15, 0.6 * h, 0.9 * h, z0, PART_GLASS)
            xs = visible_side(X0, X1)
            if xs is not None:
                side_face(p, xs, 0.6 * h, 0.9 * h, z0 + 0.15 * length, z0 + 0.6 * length, PART_GLASS)


def draw_bus(p: Painter, xc, z, w, l, h, r) -> None:
    if not p.begin(BUS, z):
        return
    X0, X1 = xc - w / 2, xc + w / 2
    box(p, X0, X1, 0.0, h, z, z + l)
    wheels(p, X0, X1, z, z + l, r, 2.2)
    front_face(p, X0 + 0.15, X1 - 0.15, 0.36 * h, 0.85 * h, z, PART_GLASS)
    xs = visible_side(X0, X1)
    if xs is not None:  # window band along the side
        side_face(p, xs, 0.4 * h, 0.8 * h, z + 0.4, z + l - 0.4, PART_GLASS)


def draw_train(p: Painter, cars: list[tuple[float, float, float, float]], h, front_z) -> None:
    """Train cars as boxes (X0, X1, Z0, Z1), one instance; drawn far first."""
    if not p.begin(TRAIN, front_z):
        return
    # far first: by depth, then (crossing cars share a depth) by lateral distance from the camera
    for X0, X1, Z0, Z1 in sorted(cars, key=lambda b: -(b[2] + abs(0.5 * (b[0] + b[1])) * 0.01)):
        box(p, X0, X1, 0.0, h, Z0, Z1)
        front_face(p, X0, X1, 0.0, 0.16 * h, Z0, PART_WHEEL)  # bogies / under-body
        xs = visible_side(X0, X1)
        if xs is not None:
            side_face(p, xs, 0.0, 0.16 * h, Z0, Z1, PART_WHEEL)
        if X1 - X0 > Z1 - Z0:  # seen from the side (crossing): a row of windows
            n = max(1, int((X1 - X0) / 2.4))
            step = (X1 - X0) / n
            for k in range(n):
                a = X0 + k * step + 0.25 * step
                front_face(p, a, a + 0.55 * step, 0.42 * h, 0.7 * h, Z0, PART_GLASS)
        else:  # seen end-on (along the street): windscreen and a side window band
            front_face(p, X0 + 0.25, X1 - 0.25, 0.45 * h, 0.75 * h, Z0, PART_GLASS)
            if xs is not None:
                side_face(p, xs, 0.42 * h, 0.7 * h, Z0 + 0.5, Z1 - 0.5, PART_GLASS)
