"""Appearance of toy scenes: turns a :class:`~selfpanoptic.toy.scenes.Scene` into an RGB image.

A :class:`RenderStyle` holds every appearance knob of one domain. The three domains share the
hue family of each class (so a model trained on one partly transfers) and differ in shades,
shading, texture, sensor noise, blur, haze, colour cast and contrast:

* ``synthia``: flat shading, clean, crisp edges.
* ``gta``: saturated, directional sunlight on box faces, per-object gradients, slight haze.
* ``cityscapes``: duller shades, overcast light, textured surfaces, haze, warm colour cast,
  lower contrast, vignetting, blur and sensor noise.

Pipeline (all vectorised over the image, float32 RGB in 0..255 until the final rounding):
class colour per image -> per-object colour (car paint, jitter) -> part colours (glass,
wheels, markings, ...) -> face lighting and per-object vertical gradient -> sky gradient ->
texture and grain -> distance haze -> outlines -> saturation, exposure, colour cast,
contrast, gamma -> vignetting -> blur -> sensor noise -> uint8.

Sizes in pixels (texture cell, blur sigma) are given for an image of REFERENCE_HEIGHT rows
and scaled with the image height, so a style looks the same at every resolution.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from selfpanoptic.classes import CLASS_NAMES, NUM_CLASSES, class_id
from selfpanoptic.toy.scenes.codes import (
    FACE_FRONT,
    NUM_PARTS,
    PART_DARK,
    PART_GLASS,
    PART_LAMP_AMBER,
    PART_LAMP_GREEN,
    PART_LAMP_RED,
    PART_MARKING,
    PART_PLAIN,
    PART_SKIN,
    PART_WHEEL,
    PART_WINDOW,
)
from selfpanoptic.toy.scenes.compose import Scene

RGB = tuple[int, int, int]

REFERENCE_HEIGHT = 128
"""Image height (rows) at which the pixel-sized knobs of a RenderStyle are given."""

_SKY = class_id("sky")
_CAR = class_id("car")
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def palette_from_names(colors: dict[str, RGB]) -> tuple[RGB, ...]:
    """Palette tuple in trainId order from a {class name: RGB} dict naming all 19 classes."""
    missing = set(CLASS_NAMES) - set(colors)
    unknown = set(colors) - set(CLASS_NAMES)
    if missing or unknown:
        raise ValueError(f"palette: missing classes {sorted(missing)}, unknown names {sorted(unknown)}")
    return tuple(tuple(int(v) for v in colors[name]) for name in CLASS_NAMES)


def _part_colors(**overrides: tuple[RGB, float]) -> tuple[tuple[RGB, float], ...]:
    """(colour, mix weight) per part code; mix 0 keeps the object colour, 1 replaces it."""
    table: dict[int, tuple[RGB, float]] = {
        PART_PLAIN: ((0, 0, 0), 0.0),
        PART_GLASS: ((35, 45, 60), 0.8),
        PART_WHEEL: ((22, 22, 24), 0.9),
        PART_MARKING: ((235, 235, 228), 0.85),
        PART_LAMP_RED: ((255, 40, 30), 0.95),
        PART_LAMP_AMBER: ((255, 190, 40), 0.95),
        PART_LAMP_GREEN: ((60, 255, 110), 0.95),
        PART_WINDOW: ((45, 55, 75), 0.6),
        PART_SKIN: ((225, 180, 150), 0.85),
        PART_DARK: ((35, 32, 38), 0.55),
    }
    names = {
        "glass": PART_GLASS, "wheel": PART_WHEEL, "marking": PART_MARKING, "lamp_red": PART_LAMP_RED,
        "lamp_amber": PART_LAMP_AMBER, "lamp_green": PART_LAMP_GREEN, "window": PART_WINDOW,
        "skin": PART_SKIN, "dark": PART_DARK,
    }
    for name, value in overrides.items():
        table[names[name]] = value
    return tuple(table[i] for i in range(NUM_PARTS))


DEFAULT_PART_COLORS = _part_colors()

DEFAULT_TEXTURE_WEIGHTS: tuple[float, ...] = tuple(
    {"road": 1.0, "sidewalk": 1.0, "building": 1.0, "wall": 0.9, "fence": 0.8, "pole": 0.4,
     "traffic light": 0.3, "traffic sign": 0.3, "vegetation": 1.6, "terrain": 1.4, "sky": 0.25}.get(name, 0.5)
    for name in CLASS_NAMES
)
"""Relative texture amplitude per class (trainId order): grass and foliage most, sky least."""


@dataclass(frozen=True)
class RenderStyle:
    """All appearance knobs of one domain. Colours are RGB 0..255."""

    palette: tuple[RGB, ...]
    """Base colour per class, trainId order (see palette_from_names)."""
    palette_jitter: float = 0.05
    """Per image and class: relative std of a per-channel gain on the base colour (shade changes)."""
    piece_jitter: float = 8.0
    """Per object / building block: std of an additive per-channel colour change (RGB units)."""
    piece_brightness_jitter: float = 0.08
    """Per object / building block: relative std of a brightness gain."""
    car_colors: tuple[RGB, ...] = ()
    """Alternative paints for cars (each car picks one with car_color_prob)."""
    car_color_prob: float = 0.0
    part_colors: tuple[tuple[RGB, float], ...] = DEFAULT_PART_COLORS
    """(colour, mix weight) per Scene part code (glass, wheels, markings, lamps, windows, ...)."""
    face_gain: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0)
    """Brightness of surfaces facing the camera, facing -X, facing +X, facing up (lighting)."""
    vertical_gradient: float = 0.0
    """Per object / block: the top is brighter than the bottom by this fraction (light from above)."""
    sky_gradient: float = 0.0
    """Sky brightens towards the horizon by this fraction (0 = flat sky)."""
    texture_strength: float = 0.0
    """Relative amplitude of low-frequency multiplicative texture (value noise)."""
    texture_cell: float = 6.0
    """Texture cell size in pixels at REFERENCE_HEIGHT."""
    grain_strength: float = 0.0
    """Relative amplitude of per-pixel multiplicative surface grain (before blur)."""
    texture_class_weight: tuple[float, ...] = DEFAULT_TEXTURE_WEIGHTS
    """Multiplies texture and grain per class (trainId order)."""
    haze_strength: float = 0.0
    """Largest mix towards haze_color, reached far away (0 = no haze)."""
    haze_distance_m: float = 100.0
    """Depth (metres) at which haze reaches 63 % of haze_strength."""
    haze_color: RGB = (200, 205, 210)
    outline_strength: float = 0.0
    """Darkening of the one-pixel boundaries between objects / classes (render edges)."""
    saturation: float = 1.0
    """1 = unchanged, > 1 more saturated, < 1 duller."""
    exposure_jitter: float = 0.0
    """Per image: std of a log-brightness change (lighting variation)."""
    color_gain: tuple[float, float, float] = (1.0, 1.0, 1.0)
    """Per-channel gain (colour cast / white balance)."""
    contrast: float = 1.0
    """Scales deviations from mid-grey (128)."""
    brightness: float = 0.0
    """Added after contrast (RGB units)."""
    gamma: float = 1.0
    """Output = 255 * (x / 255) ** gamma; > 1 darkens mid-tones."""
    vignetting: float = 0.0
    """Darkening at the image corners (fraction)."""
    blur_sigma: float = 0.0
    """Gaussian blur std in pixels at REFERENCE_HEIGHT (optics / motion)."""
    noise_sigma: float = 0.0
    """Gaussian sensor noise std (RGB units), added after blur."""

    def __post_init__(self) -> None:
        if len(self.palette) != NUM_CLASSES:
            raise ValueError(f"palette needs {NUM_CLASSES} colours, got {len(self.palette)}")
        if len(self.part_colors) != NUM_PARTS:
            raise ValueError(f"part_colors needs {NUM_PARTS} entries, got {len(self.part_colors)}")
        if len(self.texture_class_weight) != NUM_CLASSES:
            raise ValueError(f"texture_class_weight needs {NUM_CLASSES} values")


# Shared car paints: the same set in every domain (real car colours), shades differ by cast.
_CAR_PAINTS: tuple[RGB, ...] = ((170, 174, 180), (40, 40, 46), (215, 215, 212), (35, 45, 95), (120, 30, 35))

_PALETTE_DOMAINS = ("synthia", "gta", "cityscapes")
_PALETTES: dict[str, tuple[RGB, RGB, RGB]] = {
    # one row per class, one column per domain (_PALETTE_DOMAINS), so the shared hue family
    # of each class and the domain shifts read side by side
    "road":          ((98, 92, 108), (88, 86, 98), (84, 84, 88)),
    "sidewalk":      ((178, 158, 165), (186, 164, 160), (150, 140, 136)),
    "building":      ((158, 126, 100), (170, 128, 92), (128, 114, 102)),
    "wall":          ((202, 190, 158), (214, 196, 150), (172, 166, 148)),
    "fence":         ((138, 126, 96), (146, 128, 88), (120, 112, 94)),
    "pole":          ((162, 166, 178), (150, 158, 172), (140, 140, 140)),
    "traffic light": ((42, 42, 36), (36, 36, 30), (50, 48, 40)),
    "traffic sign":  ((228, 204, 38), (240, 214, 30), (200, 184, 70)),
    "vegetation":    ((66, 128, 44), (56, 138, 36), (78, 108, 56)),
    "terrain":       ((166, 172, 92), (176, 178, 80), (140, 148, 98)),
    "sky":           ((122, 174, 236), (100, 166, 244), (176, 194, 216)),
    "person":        ((204, 42, 62), (214, 34, 58), (172, 58, 72)),
    "rider":         ((238, 126, 30), (246, 118, 22), (206, 124, 58)),
    "car":           ((42, 72, 170), (34, 64, 184), (62, 80, 138)),
    "truck":         ((38, 122, 106), (28, 130, 108), (56, 106, 100)),
    "bus":           ((204, 72, 172), (214, 60, 176), (172, 84, 150)),
    "train":         ((132, 100, 204), (126, 88, 214), (124, 104, 170)),
    "motorcycle":    ((92, 24, 134), (98, 18, 146), (84, 40, 112)),
    "bicycle":       ((124, 16, 34), (136, 12, 34), (112, 34, 44)),
}
"""Base colour per class name and domain."""


def _domain_style(domain: str, **knobs) -> RenderStyle:
    """RenderStyle of ``domain``: its _PALETTES column and the shared car paints, plus ``knobs``."""
    column = _PALETTE_DOMAINS.index(domain)
    palette = palette_from_names({name: colors[column] for name, colors in _PALETTES.items()})
    return RenderStyle(palette=palette, car_colors=_CAR_PAINTS, **knobs)


STYLES: dict[str, RenderStyle] = {
    "synthia": _domain_style(
        "synthia",
        palette_jitter=0.04,
        piece_jitter=8.0,
        piece_brightness_jitter=0.06,
        car_color_prob=0.2,
        outline_strength=0.18,
        exposure_jitter=0.05,
    ),
    "gta": _domain_style(
        "gta",
        palette_jitter=0.06,
        piece_jitter=12.0,
        piece_brightness_jitter=0.1,
        car_color_prob=0.3,
        part_colors=_part_colors(glass=((50, 70, 100), 0.75), window=((60, 80, 110), 0.55)),
        face_gain=(1.0, 0.68, 1.12, 1.1),  # sun from the right, high
        vertical_gradient=0.22,
        sky_gradient=0.3,
        texture_strength=0.05,
        grain_strength=0.02,
        haze_strength=0.25,
        haze_distance_m=150.0,
        haze_color=(190, 205, 225),
        saturation=1.25,
        exposure_jitter=0.1,
        blur_sigma=0.3,
        noise_sigma=1.0,
    ),
    "cityscapes": _domain_style(
        "cityscapes",
        palette_jitter=0.06,
        piece_jitter=14.0,
        piece_brightness_jitter=0.12,
        car_color_prob=0.4,
        part_colors=_part_colors(glass=((70, 78, 88), 0.7), window=((80, 88, 98), 0.5), marking=((200, 200, 196), 0.7)),
        face_gain=(0.96, 0.9, 0.86, 1.02),  # overcast: soft, light slightly from the left
        vertical_gradient=0.08,
        sky_gradient=0.12,
        texture_strength=0.09,
        texture_cell=6.0,
        grain_strength=0.04,
        haze_strength=0.35,
        haze_distance_m=80.0,
        haze_color=(182, 186, 184),
        saturation=0.8,
        exposure_jitter=0.15,
        color_gain=(1.06, 1.0, 0.86),
        contrast=0.85,
        brightness=-4.0,
        gamma=1.1,
        vignetting=0.25,
        blur_sigma=0.8,
        noise_sigma=6.0,
    ),
}
"""The appearance of the three toy domains."""


def _value_noise(rng: np.random.Generator, H: int, W: int, cell: float) -> np.ndarray:
    """(H, W) float32 smooth noise with ~unit std: a random grid of ``cell`` pixels, bilinearly upsampled."""
    cell = max(cell, 1.0)
    gh, gw = int(H / cell) + 2, int(W / cell) + 2
    grid = rng.standard_normal((gh, gw), dtype=np.float32)
    y = (np.arange(H, dtype=np.float32) + 0.5) / cell
    x = (np.arange(W, dtype=np.float32) + 0.5) / cell
    y0, x0 = y.astype(np.int64), x.astype(np.int64)
    fy, fx = (y - y0)[:, None], (x - x0)[None, :]
    top = grid[y0][:, x0] * (1 - fx) + grid[y0][:, x0 + 1] * fx
    bottom = grid[y0 + 1][:, x0] * (1 - fx) + grid[y0 + 1][:, x0 + 1] * fx
    noise = top * (1 - fy) + bottom * fy
    return noise / max(float(noise.std()), 1e-6)


def _piece_rows(pieces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First row and row count of every piece id (index = id; 0 and missing ids: 0, 1)."""
    n = int(pieces.max()) + 1
    top = np.zeros(n, dtype=np.float32)
    rows = np.ones(n, dtype=np.float32)
    for i, sl in enumerate(ndimage.find_objects(pieces), start=1):
        if sl is not None:
            top[i] = sl[0].start
            rows[i] = max(1, sl[0].stop - sl[0].start)
    return top, rows


def render_scene(scene: Scene, style: RenderStyle, rng: np.random.Generator) -> np.ndarray:
    """Render ``scene`` in ``style``: (H, W, 3) uint8 RGB. Deterministic for the same generator state.

    The steps run in the order of the module docstring's pipeline; those that draw from ``rng``
    (shades, car paints, piece jitter, texture, exposure, sensor noise) draw in that order.
    """
    sem = scene.semantic.astype(np.intp)
    H, W = sem.shape
    pieces = scene.pieces if scene.pieces is not None else scene.instances
    parts = scene.parts if scene.parts is not None else np.zeros((H, W), dtype=np.uint8)
    facing = scene.facing if scene.facing is not None else np.full((H, W), FACE_FRONT, dtype=np.uint8)
    scale = H / REFERENCE_HEIGHT
    rows = (np.arange(H, dtype=np.float32) + 0.5)[:, None]

    img = _class_colours(sem, style, rng)
    img = _repaint_cars(img, scene, style, rng)
    img = _jitter_pieces(img, pieces, style, rng)
    img = _shade(img, pieces, parts, facing, rows, style)
    sky = sem == _SKY
    if style.sky_gradient:
        img = _sky_gradient(img, sky, scene.horizon_y if scene.horizon_y is not None else H / 2, rows, style)
    if style.texture_strength or style.grain_strength:
        img = _texture(img, sem, style, rng, scale)
    if style.haze_strength and scene.depth is not None:
        img = _haze(img, sky, scene.depth, style)
    if style.outline_strength:
        img = _outline(img, pieces, sem, style)
    img = _global_colour(img, style, rng)
    return _camera(img, rows, style, rng, scale)


def _class_colours(sem: np.ndarray, style: RenderStyle, rng: np.random.Generator) -> np.ndarray:
    """(H, W, 3) float32 RGB: the class colour of every pixel of ``sem`` (intp trainIds), shades changed per image."""
    palette = np.asarray(style.palette, dtype=np.float32)
    palette = palette * (1 + style.palette_jitter * rng.standard_normal(palette.shape, dtype=np.float32))
    return np.take(palette, sem, axis=0)  # np.take: much faster than fancy indexing for (n, 3) tables


def _repaint_cars(img: np.ndarray, scene: Scene, style: RenderStyle, rng: np.random.Generator) -> np.ndarray:
    """Car paints: per car instance (in id order), one of ``style.car_colors`` replaces the class colour."""
    if not (style.car_colors and scene.instance_classes):
        return img
    inst = scene.instances
    n_inst = max(scene.instance_classes) + 1
    paint = np.zeros((n_inst, 3), dtype=np.float32)
    repaint = np.zeros(n_inst, dtype=bool)
    colors = np.asarray(style.car_colors, dtype=np.float32)
    for i in sorted(scene.instance_classes):
        if scene.instance_classes[i] == _CAR and rng.random() < style.car_color_prob:
            repaint[i] = True
            paint[i] = colors[rng.integers(len(colors))]
    if repaint.any():
        img = np.where(repaint[inst][..., None], np.take(paint, inst, axis=0), img)
    return img


def _jitter_pieces(img: np.ndarray, pieces: np.ndarray, style: RenderStyle, rng: np.random.Generator) -> np.ndarray:
    """Per-object colour and brightness jitter (piece 0, ground and sky, keeps the image-level colour)."""
    n_pieces = int(pieces.max()) + 1
    shift = style.piece_jitter * rng.standard_normal((n_pieces, 3), dtype=np.float32)
    gain = 1 + style.piece_brightness_jitter * rng.standard_normal(n_pieces, dtype=np.float32)
    shift[0], gain[0] = 0.0, 1.0
    return img * gain[pieces][..., None] + np.take(shift, pieces, axis=0)


def _shade(img: np.ndarray, pieces: np.ndarray, parts: np.ndarray, facing: np.ndarray, rows: np.ndarray,
           style: RenderStyle) -> np.ndarray:
    """Part colours (glass, wheels, markings, lamps, ...), face lighting and brighter tops of objects.

    ``pieces``, ``parts``, ``facing``: (H, W) codes; ``rows``: (H, 1) float32 pixel-centre rows.
    """
    part_rgb = np.asarray([c for c, _ in style.part_colors], dtype=np.float32)
    part_mix = np.asarray([m for _, m in style.part_colors], dtype=np.float32)[parts][..., None]
    img = img * (1 - part_mix) + np.take(part_rgb, parts, axis=0) * part_mix
    img = img * np.asarray(style.face_gain, dtype=np.float32)[facing][..., None]
    if style.vertical_gradient:
        top, count = _piece_rows(pieces)
        rel = np.clip((rows - top[pieces]) / count[pieces], 0, 1)
        img = img * np.where(pieces > 0, 1 + style.vertical_gradient * (0.5 - rel), 1).astype(np.float32)[..., None]
    return img


def _sky_gradient(img: np.ndarray, sky: np.ndarray, horizon: float, rows: np.ndarray, style: RenderStyle) -> np.ndarray:
    """Sky pixels (``sky``: (H, W) bool) deeper at the top and lighter towards the ``horizon`` row."""
    t = np.clip(rows / max(horizon, 1.0), 0, 1)  # 0 at the top, 1 at the horizon
    lift = (style.sky_gradient * t * t)[..., None]
    deep = (1 - 0.5 * style.sky_gradient * (1 - t))[..., None]
    return np.where(sky[..., None], (img * deep) * (1 - lift) + 255 * lift, img)


def _texture(img: np.ndarray, sem: np.ndarray, style: RenderStyle, rng: np.random.Generator,
             scale: float) -> np.ndarray:
    """Two octaves of smooth noise plus grain, weighted per class; ``scale``: image height / REFERENCE_HEIGHT."""
    H, W = sem.shape
    weight = np.asarray(style.texture_class_weight, dtype=np.float32)[sem]
    tex = np.zeros((H, W), dtype=np.float32)
    if style.texture_strength:
        cell = style.texture_cell * scale
        tex += style.texture_strength * (_value_noise(rng, H, W, cell) + 0.5 * _value_noise(rng, H, W, cell / 3)) / 1.12
    if style.grain_strength:
        tex += style.grain_strength * rng.standard_normal((H, W), dtype=np.float32)
    return img * (1 + weight * tex)[..., None]


def _haze(img: np.ndarray, sky: np.ndarray, depth: np.ndarray, style: RenderStyle) -> np.ndarray:
    """Haze growing with ``depth`` (metres); not on the sky itself, whose colour the palette sets."""
    a = style.haze_strength * (1 - np.exp(-depth / style.haze_distance_m))
    a = np.where(sky, 0.0, a).astype(np.float32)[..., None]
    return img * (1 - a) + np.asarray(style.haze_color, dtype=np.float32) * a


def _outline(img: np.ndarray, pieces: np.ndarray, sem: np.ndarray, style: RenderStyle) -> np.ndarray:
    """Render edges: darken the pixels where the object or class changes from the pixel left or above."""
    H, W = sem.shape
    key = pieces.astype(np.int64) * NUM_CLASSES + sem
    edge = np.zeros((H, W), dtype=bool)
    dx = key[:, 1:] != key[:, :-1]
    dy = key[1:, :] != key[:-1, :]
    edge[:, 1:] |= dx
    edge[1:, :] |= dy
    return img * np.where(edge, 1 - style.outline_strength, 1.0)[..., None].astype(np.float32)


def _global_colour(img: np.ndarray, style: RenderStyle, rng: np.random.Generator) -> np.ndarray:
    """Saturation, exposure (one draw per image), colour cast, contrast and gamma."""
    if style.saturation != 1.0:
        luma = (img @ _LUMA)[..., None]
        img = luma + (img - luma) * style.saturation
    exposure = float(np.exp(style.exposure_jitter * rng.standard_normal()))
    img = img * (exposure * np.asarray(style.color_gain, dtype=np.float32))
    img = (img - 128.0) * style.contrast + 128.0 + style.brightness
    if style.gamma != 1.0:
        img = 255.0 * np.clip(img / 255.0, 0, 1) ** style.gamma
    return img


def _camera(img: np.ndarray, rows: np.ndarray, style: RenderStyle, rng: np.random.Generator,
            scale: float) -> np.ndarray:
    """Vignetting, blur and sensor noise, then rounding to (H, W, 3) uint8."""
    H, W = img.shape[:2]
    if style.vignetting:
        yy = (rows / H - 0.5) * 2
        xx = ((np.arange(W, dtype=np.float32) + 0.5) / W - 0.5)[None, :] * 2
        img = img * (1 - 0.5 * style.vignetting * (xx * xx + yy * yy))[..., None]
    if style.blur_sigma > 0:
        s = style.blur_sigma * scale
        img = ndimage.gaussian_filter(img, sigma=(s, s, 0), truncate=3.0)
    if style.noise_sigma > 0:
        img = img + style.noise_sigma * rng.standard_normal(img.shape, dtype=np.float32)
    return np.clip(img + 0.5, 0, 255).astype(np.uint8)


__all__ = ["DEFAULT_PART_COLORS", "DEFAULT_TEXTURE_WEIGHTS", "REFERENCE_HEIGHT", "RenderStyle", "STYLES",
           "palette_from_names", "render_scene"]
