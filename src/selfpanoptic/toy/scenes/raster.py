"""Rasterisation: which pixels a rectangle, convex polygon or ellipse covers (a pixel belongs to a
shape when its centre lies inside), and the :class:`Painter` that paints objects back to front."""

from __future__ import annotations

import math

import numpy as np

from .camera import Camera
from .codes import FACE_FRONT, PART_PLAIN, THINGS


def pixel_span(lo: float, hi: float, n: int) -> tuple[int, int]:
    """Pixel indices [i0, i1) whose centres lie in [lo, hi), clipped to [0, n)."""
    return max(0, math.ceil(lo - 0.5)), min(n, math.ceil(hi - 0.5))


def convex_mask(xs: list[float], ys: list[float], H: int, W: int):
    """Pixels whose centres lie inside the convex polygon with vertices (xs, ys) (pixels).

    Returns (r0, c0, mask) with mask a bool array of the clipped bounding box, or None.
    """
    c0, c1 = pixel_span(min(xs), max(xs), W)
    r0, r1 = pixel_span(min(ys), max(ys), H)
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


def ellipse_mask(cx: float, cy: float, rx: float, ry: float, H: int, W: int):
    """Pixels whose centres lie inside an axis-aligned ellipse; (r0, c0, mask) or None."""
    if rx <= 0 or ry <= 0:
        return None
    c0, c1 = pixel_span(cx - rx, cx + rx, W)
    r0, r1 = pixel_span(cy - ry, cy + ry, H)
    if c1 <= c0 or r1 <= r0:
        return None
    dx = ((np.arange(c0, c1, dtype=np.float32) + 0.5 - cx) / rx)[None, :]
    dy = ((np.arange(r0, r1, dtype=np.float32) + 0.5 - cy) / ry)[:, None]
    return r0, c0, dx * dx + dy * dy <= 1.0


class Painter:
    """Paints primitives back to front into a map of primitive ids.

    Every primitive id (index into ``attrs``) stands for (class, provisional instance, part,
    facing, depth, piece); id 0 is "background". One painted map plus lookup tables keeps the
    painting to a single array write per primitive.
    """

    def __init__(self, cam: Camera, absent: frozenset[int], first_piece: int):
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
        if cls in THINGS:
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
            self._apply(convex_mask(xs, ys, self.cam.H, self.cam.W), part, face)

    def ellipse(self, cx, cy, rx, ry, part=PART_PLAIN, face=FACE_FRONT) -> None:
        if self._cur is not None:
            self._apply(ellipse_mask(cx, cy, rx, ry, self.cam.H, self.cam.W), part, face)
