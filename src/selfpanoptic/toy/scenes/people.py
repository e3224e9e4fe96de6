"""Drawers of persons, riders and bikes (bicycles, motorcycles) as billboards, and the random
side-view geometry of a bike."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .codes import BICYCLE, MOTORCYCLE, PART_DARK, PART_PLAIN, PART_SKIN, PART_WHEEL, PERSON, RIDER
from .primitives import Billboard
from .raster import Painter


# Body proportions of a standing person, as fractions of the body height.
_HIP = 0.50
_SHOULDER = 0.81
_HIP_HALF_WIDTH = 0.1
_SHOULDER_HALF_WIDTH = 0.13
_HEAD_Y = 0.9
_HEAD_RX, _HEAD_RY = 0.06, 0.075


def draw_person(p: Painter, X, z, h, stride) -> None:
    if not p.begin(PERSON, z):
        return
    b = Billboard(p.cam, X, z)
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
class BikeGeom:
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


def bike_geom(rng: np.random.Generator, motor: bool, length: float, r: float, scale: float) -> BikeGeom:
    s = 1 if rng.random() < 0.5 else -1
    c = float(rng.uniform(0.15, 1.0))
    base = length - 2 * r
    # seen from behind the frame still has width: the handlebar / engine
    half = max(0.5 * base * c, (0.2 if motor else 0.08) * scale)
    seat = (-s * 0.25 * base * c, (0.8 if motor else 0.95) * scale)
    bar = (s * 0.4 * base * c, (1.0 if motor else 1.05) * scale)
    pedal = (0.0, (0.4 if motor else 0.3) * scale)
    bar_half = max(0.3 * math.sqrt(max(0.0, 1 - c * c)), 0.05) * scale
    return BikeGeom(motor, s, c, r, half, seat, bar, pedal, bar_half)


def draw_bike(p: Painter, X, z, g: BikeGeom) -> None:
    if not p.begin(MOTORCYCLE if g.motor else BICYCLE, z):
        return
    b = Billboard(p.cam, X, z)
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


def draw_rider(p: Painter, X, z, h, g: BikeGeom) -> None:
    if not p.begin(RIDER, z):
        return
    b = Billboard(p.cam, X, z)
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
