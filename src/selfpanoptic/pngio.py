"""Reading and writing the PNG files of the dataset formats, with errors that name the file.

Pillow reads 8-bit and 16-bit single-channel PNGs correctly, but it silently truncates 16-bit
*RGB* PNGs (Synthia's GT/LABELS) to their high byte, which turns every Synthia class id into 0.
Those files are therefore read and written with ``pypng``.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import png  # pypng
from PIL import Image, UnidentifiedImageError

from .errors import InputError

_CORRUPT_FIX = "re-export or re-download this file (it is truncated or not a PNG)"


def _open_error(path: Path, exc: Exception) -> InputError:
    if isinstance(exc, FileNotFoundError) or not path.exists():
        return InputError("file does not exist", path, "check the dataset root in the config")
    return InputError(f"cannot decode image ({exc.__class__.__name__}: {exc})", path, _CORRUPT_FIX)


def read_rgb(path: str | Path) -> np.ndarray:
    """Read an image as uint8 RGB, shape (H, W, 3); grey or RGBA files are converted."""
    path = Path(path)
    try:
        with Image.open(path) as im:
            im.load()
            return np.asarray(im.convert("RGB"))
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as exc:
        raise _open_error(path, exc) from exc


def read_single_channel(path: str | Path) -> np.ndarray:
    """Read an 8- or 16-bit single-channel (or palette) PNG as its raw index values, shape (H, W).

    Palette PNGs (as GTA5 ships its labels) give their palette indices, which are the ids.
    Returns uint8 for 8-bit files and int32 for 16-bit files.
    """
    path = Path(path)
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode in ("L", "P"):
                return np.asarray(im, dtype=np.uint8)
            if im.mode in ("I;16", "I;16B", "I;16L", "I"):
                return np.asarray(im).astype(np.int32)
            mode = im.mode
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as exc:
        raise _open_error(path, exc) from exc
    raise InputError(
        f"expected a single-channel label PNG, found mode {mode}",
        path,
        "label files must store one id per pixel (8-bit grey/palette or 16-bit grey)",
    )


def image_size(path: str | Path) -> tuple[int, int]:
    """(height, width) of an image file, read from its header only."""
    path = Path(path)
    try:
        with Image.open(path) as im:
            width, height = im.size
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as exc:
        raise _open_error(path, exc) from exc
    return height, width


def read_png16(path: str | Path, expected: str, fix: str, min_planes: int = 1) -> np.ndarray:
    """Read a 16-bit PNG exactly, shape (H, W, C) uint16 (C = its channels: 1 grey, 2 grey+alpha,
    3 RGB, 4 RGBA). A file that is not 16-bit or has fewer than ``min_planes`` channels raises an
    :class:`InputError` saying it is not ``expected``, with ``fix``."""
    path = Path(path)
    try:
        width, height, rows, info = png.Reader(filename=str(path)).read()
        data = np.vstack([np.asarray(row, dtype=np.uint16) for row in rows])
    except FileNotFoundError as exc:
        raise _open_error(path, exc) from exc
    except (png.Error, zlib.error, OSError, ValueError) as exc:
        raise InputError(f"cannot decode 16-bit PNG ({exc})", path, _CORRUPT_FIX) from exc
    planes = info["planes"]
    if info["bitdepth"] != 16 or planes < min_planes:
        raise InputError(f"expected {expected}, found {info['bitdepth']}-bit with {planes} channel(s)", path, fix)
    return data.reshape(height, width, planes)


def read_png16_channels(path: str | Path) -> np.ndarray:
    """Read a 16-bit multi-channel PNG exactly, shape (H, W, C) uint16 (C = 3 or 4)."""
    return read_png16(path, "a 16-bit PNG with 3 or 4 channels",
                      "Synthia GT/LABELS files store the class id in channel 0 and the instance id in channel 1",
                      min_planes=3)


def write_png(path: str | Path, array: np.ndarray) -> None:
    """Write uint8 (H, W) / (H, W, 3), uint16 (H, W) or uint16 (H, W, 3) losslessly as PNG."""
    path = Path(path)
    array = np.ascontiguousarray(array)
    if array.dtype == np.uint16 and array.ndim == 3:
        height, width, planes = array.shape
        mode = {3: "RGB;16", 4: "RGBA;16"}[planes]
        writer = png.from_array(array.reshape(height, width * planes), mode)
        writer.save(str(path))
        return
    if array.dtype == np.uint16:
        Image.fromarray(array.astype(np.uint16), mode=None).save(path)
        return
    if array.dtype != np.uint8:
        raise TypeError(f"write_png takes uint8 or uint16 arrays, got {array.dtype}")
    Image.fromarray(array).save(path)
