"""The background layer of a scene, vectorised per row / column: sky, ground (road, markings,
sidewalks, verges), far buildings, facades or tree rows, walls, fences and hedges; and the
stand-ins for absent background classes."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from selfpanoptic.classes import CLASS_NAMES, NUM_CLASSES

from .camera import Camera, Street
from .codes import (
    BUILDING,
    FACE_FRONT,
    FACE_LEFT,
    FACE_RIGHT,
    FACE_UP,
    FENCE,
    PART_DARK,
    PART_MARKING,
    PART_PLAIN,
    PART_WINDOW,
    ROAD,
    SIDEWALK,
    SKY,
    SKY_DEPTH_M,
    TERRAIN,
    VEGETATION,
    WALL,
)
from .profiles import SceneProfile, draw_count, draw_uniform
from .raster import pixel_span


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


def area_lut(absent: frozenset[int]) -> np.ndarray:
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


@dataclass
class Background:
    """The background layer, (H, W) per pixel: sem (uint8 trainId), part (uint8 PART_*),
    face (uint8 FACE_*), depth (float32 metres), piece (int32 block id, 0 for ground and sky)."""

    sem: np.ndarray
    part: np.ndarray
    face: np.ndarray
    depth: np.ndarray
    piece: np.ndarray
    n_pieces: int = 0

    def new_piece(self) -> int:
        self.n_pieces += 1
        return self.n_pieces


def paint_plane(bg: Background, cam: Camera, X, Z0, Z1, Y0, Y1, cls, pattern=None, top_profile=None) -> None:
    """Vertical plane at lateral X (metres, != 0) spanning depths Z0..Z1 and heights Y0..Y1.

    ``top_profile(Z)`` (metres -> 0..1) may scale the top height along the plane (tree rows).

    ``pattern(Y, Z)`` (arrays in metres of the covered box) may return a bool mask of
    PART_WINDOW / PART_DARK pixels: ``(mask, part)``.
    """
    xa, xb = cam.x(X, Z0), cam.x(X, Z1)
    c0, c1 = pixel_span(min(xa, xb), max(xa, xb), cam.W)
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
    r0, r1 = pixel_span(float(top[ok].min()), float(bot[ok].max()), cam.H)
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


def window_pattern(rng: np.random.Generator, p: SceneProfile, height: float):
    """Grid of windows on a facade (Y, along) in metres, plus wide shop windows at street level."""
    floor = draw_uniform(rng, p.floor_height_m)
    spacing = draw_uniform(rng, p.window_spacing_m)
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


def fence_pattern(p: SceneProfile, height: float):
    def pattern(Y, Z):
        return (np.mod(Z, p.fence_bar_spacing_m) < 0.3 * p.fence_bar_spacing_m) | (Y > height - 0.12), PART_DARK

    return pattern


def verge_segments(rng: np.random.Generator, p: SceneProfile, absent: frozenset[int], z_max: float):
    """Depth boundaries and classes of the verge segments of one side."""
    starts, classes = [0.0], []
    z = 0.0
    while True:
        grass = TERRAIN not in absent and rng.random() < p.terrain_verge_prob
        classes.append(TERRAIN if grass else SIDEWALK)
        z += draw_uniform(rng, p.verge_segment_m)
        if z >= z_max:
            break
        starts.append(z)
    return np.asarray(starts, dtype=np.float32), np.asarray(classes, dtype=np.uint8)


@dataclass
class GroundLayout:
    """What the ground of a scene shows, drawn before any of it is painted.

    verges:
        Per side (left, right): ``(starts, classes)``, float32 depths in metres where each verge
        segment starts and uint8 trainId of each segment (:func:`verge_segments`).
    patches:
        Terrain patches on the sidewalks: ``(side, inner, outer, z0, z1)``, side -1 / +1, lateral
        bounds in metres from the road centre (signed by side), depth bounds in metres.
    markings:
        Whether the road has lane markings.
    crosswalk:
        Depth (metres) where a crosswalk starts, or None.
    """

    verges: list[tuple[np.ndarray, np.ndarray]]
    patches: list[tuple[int, float, float, float, float]]
    markings: bool
    crosswalk: float | None


def draw_ground(rng: np.random.Generator, st: Street, p: SceneProfile, absent: frozenset[int]) -> GroundLayout:
    """Draw the ground layout of one scene (verges, terrain patches, markings, crosswalk), in this order."""
    verges = [verge_segments(rng, p, absent, st.z_end + 50.0) for _ in range(2)]
    patches = []
    for _ in range(draw_count(rng, p.terrain_patch_count) if TERRAIN not in absent else 0):
        s = 1 if rng.random() < 0.5 else -1
        sw = st.sidewalk[st.side_index(s)]
        z0 = draw_uniform(rng, (4.0, st.z_end))
        a = st.R + 0.4 * sw + 0.1
        patches.append((s, a, st.R + sw - 0.3, z0, z0 + draw_uniform(rng, p.terrain_patch_length_m)))
    markings = rng.random() < p.lane_marking_prob
    crosswalk = draw_uniform(rng, (8.0, 40.0)) if rng.random() < p.crosswalk_prob else None
    return GroundLayout(verges, patches, markings, crosswalk)


def ground_classes(zr: np.ndarray, lat: np.ndarray, st: Street, layout: GroundLayout) -> np.ndarray:
    """uint8 (R, W) trainIds of the ground: road, sidewalks, verges and terrain patches.

    ``zr``: float32 (R,) depth in metres of each ground row; ``lat``: float32 (R, W) lateral
    distance in metres of each pixel from the road centre (right positive).
    """
    right = lat > 0
    alat = np.abs(lat)
    sidewalk_w = np.where(right, st.sidewalk[1], st.sidewalk[0])
    verge_cls = [cls[np.searchsorted(starts, zr, side="right") - 1] for starts, cls in layout.verges]
    gsem = np.where(right, verge_cls[1][:, None], verge_cls[0][:, None])
    gsem = np.where(alat < st.R + sidewalk_w, SIDEWALK, gsem)
    for s, a, b, z0, z1 in layout.patches:
        rows = (zr >= z0) & (zr < z1)
        gsem[rows[:, None] & (s * lat >= a) & (s * lat < b)] = TERRAIN
    return np.where(alat < st.R, ROAD, gsem).astype(np.uint8)


def ground_parts(zr: np.ndarray, lat: np.ndarray, st: Street, p: SceneProfile, layout: GroundLayout) -> np.ndarray:
    """uint8 (R, W) part codes of the ground: PART_MARKING on lane lines and crosswalk stripes.

    ``zr`` and ``lat`` as for :func:`ground_classes` (metres).
    """
    alat = np.abs(lat)
    on_road = alat < st.R
    gpart = np.zeros(lat.shape, dtype=np.uint8)
    if layout.markings:
        n = max(2, round(2 * st.R / p.lane_width_m))
        lane = 2 * st.R / n
        t = (lat + st.R) / lane
        line = np.abs(t - np.round(t)) * lane < p.marking_width_m / 2
        edge = (t < 0.5) | (t > n - 0.5)
        dash = (np.mod(zr, p.dash_period_m) < p.dash_duty * p.dash_period_m)[:, None]
        gpart[line & on_road & (edge | dash)] = PART_MARKING
    if layout.crosswalk is not None:
        rows = ((zr >= layout.crosswalk) & (zr < layout.crosswalk + p.crosswalk_length_m))[:, None]
        stripes = np.mod(lat, 2 * p.crosswalk_stripe_m) < p.crosswalk_stripe_m
        gpart[rows & stripes & (alat < st.R - 0.3)] = PART_MARKING
    return gpart


def paint_ground(bg: Background, cam: Camera, st: Street, p: SceneProfile, layout: GroundLayout) -> None:
    """Paint every row below the horizon, classified by lateral distance to the road centre."""
    g0 = max(0, math.floor(cam.y_h - 0.5) + 1)  # first row whose centre is below the horizon
    if g0 >= cam.H:
        return
    u = (np.arange(g0, cam.H, dtype=np.float32) + 0.5 - cam.y_h) / cam.h_c  # pixels per metre
    zr = cam.f / u  # depth of each ground row
    lat = (np.arange(cam.W, dtype=np.float32)[None, :] + 0.5 - cam.vx) / u[:, None] - st.x_c
    bg.sem[g0:] = ground_classes(zr, lat, st, layout)
    bg.part[g0:] = ground_parts(zr, lat, st, p, layout)
    bg.face[g0:] = FACE_UP
    bg.depth[g0:] = zr[:, None]


def paint_far_buildings(rng: np.random.Generator, bg: Background, cam: Camera, st: Street, p: SceneProfile) -> None:
    """Draw and paint the row of flat buildings (facing the camera) that closes the street at z_end."""
    z_e = st.z_end
    u_e = cam.f / z_e
    xl, xr = cam.visible_x_range(z_e)
    X = xl - draw_uniform(rng, (0.0, 10.0))
    while X < xr:
        width = draw_uniform(rng, p.far_building_width_m)
        if rng.random() >= p.far_gap_prob:
            h = draw_uniform(rng, p.far_building_height_m)
            windows = window_pattern(rng, p, h) if rng.random() < p.window_prob else None
            c0, c1 = pixel_span(cam.x(X, z_e), cam.x(X + width, z_e), cam.W)
            r0, r1 = pixel_span(cam.y(h, z_e), cam.y(0.0, z_e), cam.H)
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


def paint_facades(rng: np.random.Generator, bg: Background, cam: Camera, st: Street, p: SceneProfile,
                  absent: frozenset[int]) -> None:
    """Draw and paint the facades (or rows of trees) along both sides, from the camera to z_end."""
    for s in (-1, 1):
        Xb = st.building_line(s)
        z = 0.5  # planes start just ahead of the camera (columns beyond the image are clipped)
        while z < st.z_end:
            z1 = min(z + draw_uniform(rng, p.building_length_m), st.z_end)
            if rng.random() < p.building_gap_prob and VEGETATION not in absent:
                crown = draw_uniform(rng, p.sizes.crown_radius) * 2 * p.object_scale
                phase = float(rng.uniform(0, 2 * math.pi))
                paint_plane(bg, cam, Xb, z, z1, 0.0, draw_uniform(rng, p.tree_row_height_m), VEGETATION,
                             top_profile=lambda Z, c=crown, ph=phase: 0.8 + 0.2 * np.abs(np.cos(np.pi * Z / c + ph)))
            else:
                h = draw_uniform(rng, p.building_height_m)
                windows = window_pattern(rng, p, h) if rng.random() < p.window_prob else None
                paint_plane(bg, cam, Xb, z, z1, 0.0, h, BUILDING, windows)
            z = z1


def paint_barriers(rng: np.random.Generator, bg: Background, cam: Camera, st: Street, p: SceneProfile,
                   absent: frozenset[int]) -> None:
    """Draw and paint the walls, fences and hedges just in front of the facades."""
    barriers = [
        (WALL, p.wall_prob, p.wall_count, p.wall_height_m),
        (FENCE, p.fence_prob, p.fence_count, p.fence_height_m),
        (VEGETATION, p.hedge_prob, p.hedge_count, p.hedge_height_m),
    ]
    for cls, prob, count, height in barriers:
        if cls in absent or rng.random() >= prob:
            continue
        for _ in range(draw_count(rng, count)):
            s = 1 if rng.random() < 0.5 else -1
            X = st.building_line(s) - s * p.barrier_setback_m
            z0 = draw_uniform(rng, (1.0, 0.8 * st.z_end))
            z1 = min(z0 + draw_uniform(rng, p.barrier_length_m), st.z_end)
            h = draw_uniform(rng, height)
            paint_plane(bg, cam, X, z0, z1, 0.0, h, cls, fence_pattern(p, h) if cls == FENCE else None)


def build_background(rng: np.random.Generator, cam: Camera, st: Street, p: SceneProfile,
                     absent: frozenset[int]) -> Background:
    """Draw and paint the background of one scene; absent classes are replaced by their stand-ins.

    Layers are drawn from ``rng`` and painted back to front in a fixed order (ground, far
    buildings, facades, barriers), so the same generator state gives the same background.
    """
    H, W = cam.H, cam.W
    bg = Background(
        sem=np.full((H, W), SKY, dtype=np.uint8),
        part=np.zeros((H, W), dtype=np.uint8),
        face=np.full((H, W), FACE_FRONT, dtype=np.uint8),
        depth=np.full((H, W), SKY_DEPTH_M, dtype=np.float32),
        piece=np.zeros((H, W), dtype=np.int32),
    )
    paint_ground(bg, cam, st, p, draw_ground(rng, st, p, absent))
    paint_far_buildings(rng, bg, cam, st, p)
    paint_facades(rng, bg, cam, st, p, absent)
    paint_barriers(rng, bg, cam, st, p, absent)
    bg.sem = area_lut(absent)[bg.sem]
    return bg
