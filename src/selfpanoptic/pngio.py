"""Reading and writing the image and PNG files of the dataset formats, with errors that name the file.

Pillow reads 8-bit and 16-bit single-channel PNGs correctly, but it silently truncates 16-bit
*RGB* PNGs (Synthia's GT/LABELS) to their high byte, which turns every Synthia class id into 0.
Those files are therefore read and written with ``pypng``.

Photos (:func:`read_rgb`, :func:`image_size`) are the picture as a viewer shows it:

- 16-bit samples become 8-bit by their high byte (``v >> 8``, i.e. ``floor(v / 256)``; it differs
  from ``round(v / 257)`` by at most 1 and equals it for 8-bit values stored as 16 bits,
  ``v = 257 * k``). Pillow already does this for 16-bit RGB, RGBA and grey+alpha PNGs, so the
  same shift is applied to 16-bit grey (which ``convert("RGB")`` would clip at 255): a picture
  reads the same whatever the file's bit depth or channels.
- 32-bit integer and float images (Pillow modes ``I`` and ``F``, e.g. TIFFs) have no defined
  range of values, so they are refused with an :class:`InputError`.
- The EXIF orientation (or the XMP one Pillow reads in its place) is applied, as
  :func:`PIL.ImageOps.exif_transpose` does; it is read from the metadata before the pixel data,
  so :func:`image_size` gets it without decoding the pixels.
"""

from __future__ import annotations

import re
import zlib
from pathlib import Path

import numpy as np
import png  # pypng
from PIL import ExifTags, Image, UnidentifiedImageError

from .errors import InputError

_CORRUPT_FIX = "re-export or re-download this file (it is truncated or not a PNG)"


_OPEN_ERRORS = (OSError, UnidentifiedImageError, SyntaxError, ValueError, Image.DecompressionBombError)
"""What Pillow raises for a file it cannot open or decode."""


def _open_error(path: Path, exc: Exception) -> InputError:
    if isinstance(exc, FileNotFoundError) or not path.exists():
        return InputError("file does not exist", path, "check the dataset root in the config")
    if isinstance(exc, Image.DecompressionBombError):
        # Pillow refuses images over 2 * MAX_IMAGE_PIXELS before decoding them; its message has the count
        found = re.search(r"\((\d+) pixels\)", str(exc))
        pixels = f"{found.group(1)} pixels" if found else str(exc)
        limit = 2 * Image.MAX_IMAGE_PIXELS
        return InputError(f"image too large: {pixels}, over the limit of {limit} pixels (Pillow's guard against "
                          "decompression bombs)", path, f"resize it to at most {limit} pixels (width x height)")
    return InputError(f"cannot decode image ({exc.__class__.__name__}: {exc})", path, _CORRUPT_FIX)


_PHOTO_FIX = "save it as an 8-bit or 16-bit PNG or as a JPEG"

_GREY16_MODES = ("I;16", "I;16B", "I;16L", "I;16N")
"""Pillow's modes of 16-bit greyscale, by byte order."""

_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
"""EXIF orientation -> the transposition that shows the picture upright (that of ``exif_transpose``)."""


def _orientation(im: Image.Image) -> int:
    """EXIF orientation (1-8) of an opened image whose pixels are not loaded yet; 1 when absent or invalid."""
    # The base getexif reads only the metadata parsed with the header. PngImageFile.getexif would
    # decode all pixels to look for an eXIf chunk after them (the PNG spec puts it before):
    # read_rgb and image_size both call this, so they always agree on the displayed size.
    value = Image.Image.getexif(im).get(ExifTags.Base.Orientation, 1)
    return value if isinstance(value, int) and value in _TRANSPOSE else 1


def _to_rgb(im: Image.Image, path: Path) -> Image.Image:
    """A loaded image file as an 8-bit ``RGB`` image (the module docstring says how, per mode)."""
    # Older Pillow opens 16-bit grey PNGs as mode I; an I image of another format is 32-bit.
    if im.mode in _GREY16_MODES or (im.mode == "I" and im.format == "PNG"):
        return Image.fromarray((np.asarray(im) >> 8).astype(np.uint8)).convert("RGB")
    if im.mode in ("I", "F"):
        kind = "32-bit integer" if im.mode == "I" else "floating-point"
        raise InputError(f"cannot read a {kind} image (mode {im.mode}) as an 8-bit RGB photo: "
                         "its range of values is unknown", path, _PHOTO_FIX)
    try:
        return im.convert("RGB")
    except ValueError as exc:  # a mode Pillow cannot convert (La, rare 16-bit variants)
        raise InputError(f"cannot convert an image of mode {im.mode} to RGB", path, _PHOTO_FIX) from exc


def read_rgb(path: str | Path) -> np.ndarray:
    """Read an image as the picture a viewer shows, as 8-bit RGB.

    Grey, palette, RGBA and CMYK files are converted (alpha is dropped); 16-bit samples are scaled
    to 8 bits by their high byte (``v >> 8``); the EXIF orientation is applied. The module
    docstring says why.

    Parameters
    ----------
    path : str or pathlib.Path
        Any image file Pillow reads (PNG, JPEG, ...).

    Returns
    -------
    numpy.ndarray
        (H, W, 3) uint8 RGB; H and W are those of :func:`image_size`, i.e. after the orientation.

    Raises
    ------
    InputError
        Naming the file: it does not exist, cannot be decoded (truncated, not an image), is over
        Pillow's size limit (``2 * Image.MAX_IMAGE_PIXELS``), or is a
        32-bit integer or float image (no meaning as an 8-bit photo) or of a mode Pillow cannot
        convert to RGB.
    """
    path = Path(path)
    try:
        with Image.open(path) as im:
            orientation = _orientation(im)  # before load(): see _orientation
            im.load()
            rgb = _to_rgb(im, path)
    except _OPEN_ERRORS as exc:
        raise _open_error(path, exc) from exc
    if orientation in _TRANSPOSE:
        rgb = rgb.transpose(_TRANSPOSE[orientation])
    return np.asarray(rgb)


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
    except _OPEN_ERRORS as exc:
        raise _open_error(path, exc) from exc
    raise InputError(
        f"expected a single-channel label PNG, found mode {mode}",
        path,
        "label files must store one id per pixel (8-bit grey/palette or 16-bit grey)",
    )


def image_size(path: str | Path) -> tuple[int, int]:
    """Displayed size of an image file, read from its header and metadata without decoding pixels.

    Parameters
    ----------
    path : str or pathlib.Path
        Any image file Pillow reads.

    Returns
    -------
    tuple of int
        ``(height, width)`` as :func:`read_rgb` returns the picture: swapped from the stored size
        when the EXIF orientation (5-8) turns it by 90 degrees.

    Raises
    ------
    InputError
        Naming the file: it does not exist, its header cannot be read, or it is over Pillow's
        size limit.
    """
    path = Path(path)
    try:
        with Image.open(path) as im:
            width, height = im.size
            orientation = _orientation(im)
    except _OPEN_ERRORS as exc:
        raise _open_error(path, exc) from exc
    # 5-8 transpose or turn the picture by 90 degrees, which swaps its sides.
    return (width, height) if orientation >= 5 else (height, width)


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
