"""Image sizes of the toy domains: one per domain, and per gta-like frame when they vary.

The config's ``toy`` section gives every domain ``height`` x ``width``; ``synthia_size``,
``gta_size`` and ``target_size`` ([height, width]) override it per domain, so the toy domains can
have the real datasets' sizes (Synthia RAND-CITYSCAPES 760x1280, GTA5 about 1052x1914, Cityscapes
1024x2048). ``gta_size_jitter`` makes the gta-like frames vary in size, as GTA5's frames do: each
side of frame i is scaled by its own factor drawn uniformly from [1 - jitter, 1 + jitter], from a
random stream of its own (seed, domain, index), so the scene's content stream is the same with or
without jitter. A scene is laid out in fractions of the image size, so one scene drawn at two
sizes has the same content.
"""

from __future__ import annotations

from typing import Any

import numpy as np

SIZE_KEYS = {"synthia": "synthia_size", "gta": "gta_size", "target": "target_size"}
"""The ``toy`` key that sets each domain's [height, width] (null: ``height`` x ``width``)."""

SIZE_DEFAULTS: dict[str, Any] = {"synthia_size": None, "gta_size": None, "target_size": None, "gta_size_jitter": 0.0}
"""The size options and their defaults, at which the toy domains are as before the options existed."""

MIN_SIDE = 8
"""Smallest side a jittered frame may have (what the scene generator accepts)."""

JITTER_STREAM = 0x512E
"""Last element of the seed of a gta-like frame's size draw, apart from its content's seed."""


def domain_size(settings: dict[str, Any], domain: str) -> tuple[int, int]:
    """(height, width) of ``domain`` (synthia, gta, target) before any jitter."""
    size = settings.get(SIZE_KEYS[domain])
    if size is None:
        return int(settings["height"]), int(settings["width"])
    height, width = size
    return int(height), int(width)


def frame_size(settings: dict[str, Any], domain: str, index: int, seed: int, domain_seed: int) -> tuple[int, int]:
    """(height, width) of image ``index`` of ``domain``: the domain's size, jittered for gta frames.

    ``domain_seed`` is the domain's number in the generator's seeds (``DOMAIN_SEEDS``).
    """
    height, width = domain_size(settings, domain)
    jitter = float(settings.get("gta_size_jitter", 0.0) or 0.0)
    if domain != "gta" or jitter == 0:
        return height, width
    factors = np.random.default_rng([seed, domain_seed, index, JITTER_STREAM]).uniform(1 - jitter, 1 + jitter, size=2)
    return max(MIN_SIDE, int(round(height * factors[0]))), max(MIN_SIDE, int(round(width * factors[1])))


def recorded_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """``settings`` without the size options that are at their defaults: what the marker file records,
    so that toy data generated without these options keeps its bytes."""
    return {key: value for key, value in settings.items()
            if not (key in SIZE_DEFAULTS and value == SIZE_DEFAULTS[key])}
