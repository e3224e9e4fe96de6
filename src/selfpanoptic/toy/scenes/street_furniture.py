"""Drawers of street furniture: poles carrying traffic signs and lights, and trees."""

from __future__ import annotations

from .codes import (
    PART_DARK,
    PART_LAMP_AMBER,
    PART_LAMP_GREEN,
    PART_LAMP_RED,
    POLE,
    TRAFFIC_LIGHT,
    TRAFFIC_SIGN,
    VEGETATION,
)
from .primitives import Billboard
from .raster import Painter


def draw_pole(p: Painter, X, z, h, w, s_road, sign, light) -> None:
    """Pole at lateral X (``s_road`` = direction towards the road), optional sign and light.

    sign:  None or (shape, size, second_sign) with shape in {"rect", "circle", "triangle", "wide"}.
    light: None or (box_height, box_width, lit_part, arm_length or 0).
    """
    b = Billboard(p.cam, X, z)
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


def draw_tree(p: Painter, X, z, h, rc, trunk_w, blobs) -> None:
    if not p.begin(VEGETATION, z):
        return
    b = Billboard(p.cam, X, z)
    b.rect(p, -trunk_w / 2, 0.0, trunk_w / 2, h - 1.5 * rc, PART_DARK, min_size=True)
    b.ellipse(p, 0.0, h - rc, rc, 1.1 * rc)
    for dx, dy, k in blobs:  # extra crown blobs make the outline irregular
        b.ellipse(p, dx * rc, h - rc + dy * rc, k * rc, k * rc * 1.1)
