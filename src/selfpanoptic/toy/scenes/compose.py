"""The :class:`Scene` result and :func:`generate_scene`, which draws camera, street, background and
objects, paints the objects back to front and merges both layers into label maps."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from selfpanoptic.classes import CLASS_NAMES, class_id

from .background import Background, build_background
from .camera import Camera, sample_camera, sample_street
from .codes import TRAIN, TRUCK
from .placement import PlacedObject, Placer, place_objects, replace_forced
from .profiles import DEFAULT_PROFILE, SceneProfile
from .raster import Painter


@dataclass
class Scene:
    """Labels of one toy image (plus appearance hints for the renderer).

    semantic:  (H, W) uint8, trainId 0..18 of every pixel (no ignore).
    instances: (H, W) int32, 0 on stuff pixels, 1..K on thing pixels (consecutive, every
               index visible).
    instance_classes: instance index -> trainId; equals the semantic class of all its pixels.
    parts:  (H, W) uint8 PART_* code (colour only), or None.
    facing: (H, W) uint8 FACE_* surface orientation, or None.
    depth:  (H, W) float32 metres from the camera (SKY_DEPTH_M on sky), or None.
    pieces: (H, W) int32 id of the object or building block a pixel belongs to (0 for ground
            and sky), so the renderer can vary colours per object, or None.
    horizon_y: horizon row in pixels (may lie between rows), or None.
    """

    semantic: np.ndarray
    instances: np.ndarray
    instance_classes: dict[int, int]
    parts: np.ndarray | None = None
    facing: np.ndarray | None = None
    depth: np.ndarray | None = None
    pieces: np.ndarray | None = None
    horizon_y: float | None = None


def paint_objects(bg: Background, cam: Camera, objs: list[PlacedObject], absent: frozenset[int]) -> Painter:
    """Paint ``objs`` far to near (decreasing key) onto a fresh :class:`Painter`."""
    painter = Painter(cam, absent, first_piece=bg.n_pieces + 1)
    for obj in sorted(objs, key=lambda o: -o.key):  # stable: ties keep placement order
        obj.draw(painter)
    return painter


def generate_scene(
    rng: np.random.Generator,
    height: int,
    width: int,
    profile: SceneProfile = DEFAULT_PROFILE,
    include_truck: bool | None = None,
    include_train: bool | None = None,
) -> Scene:
    """Draw one random toy street scene of ``height`` x ``width`` pixels.

    include_truck / include_train: None = decide randomly (profile.truck_prob / train_prob);
    True = at least one truck / train visible with >= profile.min_forced_visible_frac of the
    pixels (re-placed nearer when hidden by other objects); False = none at all.
    Deterministic for the same generator state and arguments.
    """
    if height < 8 or width < 8:
        raise ValueError(f"image size must be at least 8x8, got {height}x{width}")
    absent = frozenset(class_id(n) for n in profile.absent_classes)
    for cls, forced in ((TRUCK, include_truck), (TRAIN, include_train)):
        if forced and cls in absent:
            raise ValueError(f"include_{CLASS_NAMES[cls]}=True but {CLASS_NAMES[cls]!r} is in absent_classes")
    want_truck = include_truck if include_truck is not None else (TRUCK not in absent and rng.random() < profile.truck_prob)
    want_train = include_train if include_train is not None else (TRAIN not in absent and rng.random() < profile.train_prob)

    cam = sample_camera(rng, height, width, profile)
    street = sample_street(rng, profile)
    bg = build_background(rng, cam, street, profile, absent)
    placer = Placer(rng, cam, street, profile, absent)
    place_objects(placer, profile, absent, bool(want_truck), bool(want_train))

    # Forced classes must end up visible; re-place hidden ones nearer, finally on top of all.
    forced = [c for c, f in ((TRUCK, include_truck), (TRAIN, include_train)) if f]
    min_px = max(1, math.ceil(profile.min_forced_visible_frac * height * width))
    for attempt in range(profile.max_place_attempts + 1):
        painter = paint_objects(bg, cam, placer.objs, absent)
        if not forced:
            break
        inst_lut = np.array([a[1] for a in painter.attrs], dtype=np.int32)
        counts = np.bincount(inst_lut[painter.pid].ravel(), minlength=len(painter.instance_classes) + 1)
        missing = [
            c for c in forced
            if not any(counts[i] >= min_px for i, ic in painter.instance_classes.items() if ic == c)
        ]
        if not missing:
            break
        if attempt == profile.max_place_attempts:
            raise RuntimeError(f"could not make {[CLASS_NAMES[c] for c in missing]} visible")
        for c in missing:
            replace_forced(placer, c, last=attempt >= profile.max_place_attempts - 2)

    return compose_scene(bg, painter, cam)


def compose_scene(bg: Background, painter: Painter, cam: Camera) -> Scene:
    """Merge background and painted objects; renumber the visible instances 1..K."""
    attrs = painter.attrs
    pid = painter.pid
    has = pid > 0
    lut_sem = np.array([a[0] for a in attrs], dtype=np.uint8)
    lut_inst = np.array([a[1] for a in attrs], dtype=np.int32)
    lut_part = np.array([a[2] for a in attrs], dtype=np.uint8)
    lut_face = np.array([a[3] for a in attrs], dtype=np.uint8)
    lut_depth = np.array([a[4] for a in attrs], dtype=np.float32)
    lut_piece = np.array([a[5] for a in attrs], dtype=np.int32)

    semantic = np.where(has, lut_sem[pid], bg.sem)
    provisional = lut_inst[pid]
    n = len(painter.instance_classes)
    visible = np.bincount(provisional.ravel(), minlength=n + 1) > 0
    visible[0] = False
    renumber = np.zeros(n + 1, dtype=np.int32)
    ids = np.flatnonzero(visible)
    renumber[ids] = np.arange(1, len(ids) + 1, dtype=np.int32)
    instances = renumber[provisional]
    instance_classes = {int(renumber[i]): painter.instance_classes[int(i)] for i in ids}

    return Scene(
        semantic=semantic.astype(np.uint8),
        instances=instances,
        instance_classes=instance_classes,
        parts=np.where(has, lut_part[pid], bg.part),
        facing=np.where(has, lut_face[pid], bg.face),
        depth=np.where(has, lut_depth[pid], bg.depth).astype(np.float32),
        pieces=np.where(has, lut_piece[pid], bg.piece),
        horizon_y=cam.y_h,
    )
