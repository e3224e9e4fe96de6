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

Modules, in the order a scene is built: :mod:`.profiles` (the knobs), :mod:`.camera` (camera
and street), :mod:`.background`, :mod:`.placement` (where objects stand), :mod:`.vehicles`,
:mod:`.people` and :mod:`.street_furniture` (how they look), drawn through :mod:`.primitives`
and :mod:`.raster`, merged by :mod:`.compose`; :mod:`.codes` holds the shared label codes.
"""

from __future__ import annotations

from .compose import Scene, generate_scene
from .profiles import PROFILES, SceneProfile

__all__ = ["PROFILES", "Scene", "SceneProfile", "generate_scene"]
