"""The pinhole camera (world metres to pixels, see the package docstring) and the street it looks
along, with the functions that draw both at random from a profile."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .profiles import SceneProfile, draw_uniform


@dataclass(frozen=True)
class Camera:
    """Pinhole camera looking horizontally along +Z; projects world metres to pixel coordinates.

    Pixel coordinates are continuous: column ``x`` and row ``y``, pixel ``(r, c)`` covering
    ``[c, c+1) x [r, r+1)``.
    """

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
class Street:
    """Lateral layout of the straight street (metres); ``s`` = -1 is the left side, +1 the right."""

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


def sample_camera(rng: np.random.Generator, H: int, W: int, p: SceneProfile) -> Camera:
    """Camera of an ``H`` x ``W`` image: four draws (horizon, vanishing point, focal, height)."""
    return Camera(
        H=H,
        W=W,
        y_h=draw_uniform(rng, p.horizon_frac) * H,
        vx=draw_uniform(rng, p.vanishing_x_frac) * W,
        f=draw_uniform(rng, p.focal_frac) * W,
        h_c=draw_uniform(rng, p.camera_height_m),
    )


def sample_street(rng: np.random.Generator, p: SceneProfile) -> Street:
    """Road width and offset, sidewalks, verges and street length of one scene."""
    R = draw_uniform(rng, p.road_half_width_m)
    # The camera drives on the road: keep it at least one metre inside the kerbs.
    x_c = float(np.clip(draw_uniform(rng, p.road_offset_m), -(R - 1.0), R - 1.0))
    sidewalk = (draw_uniform(rng, p.sidewalk_width_m), draw_uniform(rng, p.sidewalk_width_m))
    verge = tuple(
        draw_uniform(rng, p.verge_width_m) if rng.random() < p.verge_prob else 0.0 for _ in range(2)
    )
    return Street(x_c=x_c, R=R, sidewalk=sidewalk, verge=verge, z_end=draw_uniform(rng, p.street_length_m))
