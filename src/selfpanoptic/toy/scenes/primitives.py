"""World-space drawing primitives: the faces of axis-aligned 3-D boxes (vehicles) and camera-facing
billboards (persons, bikes, poles, trees), projected through the camera onto a :class:`Painter`."""

from __future__ import annotations

from .camera import Camera
from .codes import FACE_FRONT, FACE_LEFT, FACE_RIGHT, FACE_UP, PART_PLAIN
from .raster import Painter


def front_face(p: Painter, X0, X1, Y0, Y1, Z, part=PART_PLAIN) -> None:
    """Rectangle X0..X1 x Y0..Y1 (metres) on the plane at depth Z, facing the camera."""
    c = p.cam
    p.rect(c.x(X0, Z), c.y(Y1, Z), c.x(X1, Z), c.y(Y0, Z), part, FACE_FRONT)


def side_face(p: Painter, X, Y0, Y1, Z0, Z1, part=PART_PLAIN) -> None:
    """Quad on the vertical plane at lateral X spanning depths Z0..Z1 and heights Y0..Y1."""
    c = p.cam
    xs = [c.x(X, Z0), c.x(X, Z0), c.x(X, Z1), c.x(X, Z1)]
    ys = [c.y(Y0, Z0), c.y(Y1, Z0), c.y(Y1, Z1), c.y(Y0, Z1)]
    p.poly(xs, ys, part, FACE_LEFT if X > 0 else FACE_RIGHT)


def top_face(p: Painter, X0, X1, Y, Z0, Z1, part=PART_PLAIN) -> None:
    """Horizontal quad at height Y spanning X0..X1 and depths Z0..Z1 (roofs, seen from above)."""
    c = p.cam
    xs = [c.x(X0, Z0), c.x(X1, Z0), c.x(X1, Z1), c.x(X0, Z1)]
    ys = [c.y(Y, Z0), c.y(Y, Z0), c.y(Y, Z1), c.y(Y, Z1)]
    p.poly(xs, ys, part, FACE_UP)


def visible_side(X0: float, X1: float) -> float | None:
    """Lateral position of the side face of a box the camera (at X = 0) can see, if any."""
    if X0 > 0:
        return X0
    if X1 < 0:
        return X1
    return None


def box(p: Painter, X0, X1, Y0, Y1, Z0, Z1, part=PART_PLAIN) -> None:
    """Axis-aligned box: its visible side, top and front faces (convex: they never overlap)."""
    xs = visible_side(X0, X1)
    if xs is not None:
        side_face(p, xs, Y0, Y1, Z0, Z1, part)
    if Y1 < p.cam.h_c:
        top_face(p, X0, X1, Y1, Z0, Z1, part)
    front_face(p, X0, X1, Y0, Y1, Z0, part)


class Billboard:
    """Maps offsets in metres (dx right, Y up) around a ground point to pixels."""

    def __init__(self, cam: Camera, X: float, Z: float):
        self.u = cam.f / Z  # pixels per metre
        self.gx = cam.x(X, Z)
        self.gy = cam.y(0.0, Z)

    def pts(self, offsets: list[tuple[float, float]]) -> tuple[list[float], list[float]]:
        return [self.gx + dx * self.u for dx, _ in offsets], [self.gy - Y * self.u for _, Y in offsets]

    def ellipse(self, p: Painter, dx, Y, rx, ry, part=PART_PLAIN) -> None:
        p.ellipse(self.gx + dx * self.u, self.gy - Y * self.u, rx * self.u, ry * self.u, part)

    def rect(self, p: Painter, dx0, Y0, dx1, Y1, part=PART_PLAIN, min_size=False) -> None:
        u = self.u
        p.rect(self.gx + dx0 * u, self.gy - Y1 * u, self.gx + dx1 * u, self.gy - Y0 * u, part, FACE_FRONT, min_size)
