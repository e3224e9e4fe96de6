"""Reading and writing the image and PNG files of the dataset formats, with errors that name the file.

Pillow reads 8-bit and 16-bit single-channel PNGs correctly, but it silently truncates 16-bit
*RGB* PNGs (Synthia's GT/LABELS) to their high byte, which turns every Synthia class id into 0.
Those files are therefore written with ``pypng`` and read by :func:`read_png16`, which gives
pypng's values (see the end of this text).

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

16-bit PNGs (Cityscapes disparity, Synthia depth and labels) are the bulk of what ``cache``
decodes, and pypng undoes the PNG filters in pure Python (0.5 to 3 s per 1024x2048 file).
:func:`read_png16` therefore decodes well-formed ones itself: it checks the chunks as pypng
does (signature, chunk types, lengths and CRCs, IHDR, the chunks pypng parses, IEND), inflates
the ``IDAT`` data with zlib, checks that it holds exactly the image's scanlines with valid filter
types, and lets Pillow undo the filters of exactly those bytes, which it does exactly for 8-bit
and 16-bit grey (16-bit colour and alpha channels go through it as 8-bit lanes, see
:func:`_unfilter_lanes`). Anything else (another bit depth, an interlaced colour file, a
truncated or corrupt file, data pypng would read otherwise) goes to pypng as before, so every
file gives the same array, or the same error, as with pypng alone.
"""

from __future__ import annotations

import io
import re
import struct
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


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

_PLANES = {0: (1, False), 2: (3, False), 4: (1, True), 6: (3, True)}
"""PNG colour type (other than palette) -> (colour channels, alpha)."""

_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))
"""Adam7 passes: (x start, y start, x step, y step)."""


def _chunk(kind: bytes, body) -> list:
    """A PNG chunk, as pieces to join."""
    return [struct.pack("!I", len(body)), kind, body, struct.pack("!I", zlib.crc32(body, zlib.crc32(kind)))]


def _stored_png(width: int, height: int, depth: int, colour: int, interlace: int, scanlines) -> bytes:
    """A PNG of these scanlines (filter bytes included), stored in its zlib stream without compression."""
    header = struct.pack("!2I5B", width, height, depth, colour, 0, 0, interlace)
    return b"".join([_PNG_SIGNATURE, *_chunk(b"IHDR", header), *_chunk(b"IDAT", zlib.compress(scanlines, 0)),
                     *_chunk(b"IEND", b"")])


def _decode_stored(png_bytes: bytes, modes: tuple[str, ...], size: tuple[int, int]) -> np.ndarray | None:
    """Pillow's array of a PNG made by :func:`_stored_png`; None if Pillow does not read it as expected."""
    try:
        with Image.open(io.BytesIO(png_bytes)) as im:
            im.load()
            if im.mode not in modes or im.size != size:
                return None
            return np.asarray(im)
    except Exception:  # noqa: BLE001 - whatever Pillow makes of the file, pypng decides
        return None


def _scanlines(width: int, height: int, bpp: int, interlaced: bool) -> list[tuple[int, int]]:
    """``(bytes per scanline with its filter byte, scanlines)`` of each pass (one, or the non-empty
    Adam7 passes), in the order of the inflated ``IDAT`` data, at ``bpp`` bytes per pixel."""
    passes = _ADAM7 if interlaced else ((0, 0, 1, 1),)
    lines = [(-(-(width - x0) // dx), -(-(height - y0) // dy)) for x0, y0, dx, dy in passes]
    return [(1 + bpp * columns, rows) for columns, rows in lines if columns > 0 and rows > 0]


def _unfilter_grey16(raw: bytes, width: int, height: int, interlace: int) -> np.ndarray | None:
    """(H, W, 1) values of a 16-bit grey PNG's scanlines: Pillow reads 16-bit grey exactly."""
    grey = _decode_stored(_stored_png(width, height, 16, 0, interlace, raw), _GREY16_MODES + ("I",), (width, height))
    return None if grey is None else grey.astype(np.uint16)[:, :, None]


def _unfilter_lanes(raw: bytes, width: int, height: int, planes: int) -> np.ndarray | None:
    """(H, W, planes) values of the non-interlaced scanlines of a 16-bit PNG of ``planes`` channels.

    Pillow keeps only the high byte of 16-bit RGB(A) and grey+alpha samples, but its filters are
    exact on 8-bit grey. A filter works bytewise, on byte i and bytes i - bpp (bpp = bytes per
    pixel) of its row and of the row above, so each byte position k < bpp within the pixels (a
    lane) is unfiltered independently of the others: lane k is an 8-bit grey image of W x H whose
    rows have the file's filter types. The lanes are stacked in one such image, each followed by
    a row of zeros (unfiltered), which is the "row above" the next lane's first row that PNG assumes.
    """
    bpp, line = 2 * planes, 1 + width
    rows = np.frombuffer(raw, dtype=np.uint8).reshape(height, 1 + width * bpp)
    stacked = np.zeros((bpp, height + 1, line), dtype=np.uint8)
    stacked[:, :height, 0] = rows[:, 0]
    stacked[:, :height, 1:] = rows[:, 1:].reshape(height, width, bpp).transpose(2, 0, 1)
    lanes_height = bpp * (height + 1) - 1  # without the last lane's row of zeros
    lanes = _decode_stored(_stored_png(width, lanes_height, 8, 0, 0, stacked.reshape(-1)[: lanes_height * line]),
                           ("L",), (width, lanes_height))
    if lanes is None:
        return None
    pixels = np.empty((height, width, bpp), dtype=np.uint8)
    for k in range(bpp):
        pixels[:, :, k] = lanes[k * (height + 1): k * (height + 1) + height]
    return pixels.view(">u2").astype(np.uint16)


def _decode_png16(data: bytes) -> np.ndarray | None:
    """The (H, W, C) uint16 values of a well-formed 16-bit PNG, exactly as pypng reads them; None
    for any other file (another bit depth, an interlaced one with colour or alpha, or anything
    pypng might read otherwise or reject).

    The chunks are checked as pypng checks them and the ``IDAT`` data inflated from the same zlib
    stream, so the scanlines are the bytes pypng would unfilter; Pillow then undoes the filters of
    a PNG holding only those scanlines, stored (not compressed again): 16-bit grey as it is, other
    files as 8-bit lanes (see :func:`_unfilter_lanes`).
    """
    chunks = _png16_chunks(data)
    if chunks is None:
        return None
    (width, height, planes, interlace), idat = chunks
    scanlines = _scanlines(width, height, 2 * planes, bool(interlace))
    raw = _inflate_exactly(idat, sum(line * rows for line, rows in scanlines))
    if raw is None:
        return None
    filters, offset = np.frombuffer(raw, dtype=np.uint8), 0
    for line, rows in scanlines:
        if filters[offset:offset + line * rows:line].max() > 4:  # pypng knows filter types 0 to 4
            return None
        offset += line * rows
    if planes == 1:
        return _unfilter_grey16(raw, width, height, interlace)
    return _unfilter_lanes(raw, width, height, planes)


def _png16_chunks(data: bytes) -> tuple[tuple[int, int, int, int], list[memoryview]] | None:
    """((width, height, planes, interlace), IDAT bodies) of a 16-bit PNG whose chunks pypng reads
    without complaint (CRCs, IHDR first, the lengths pypng checks before IDAT, IEND); else None."""
    view = memoryview(data)
    if view[:8] != _PNG_SIGNATURE:
        return None
    pos, header, idat = 8, None, []
    while True:
        if pos + 8 > len(data):  # truncated, or no IEND
            return None
        length, kind = struct.unpack_from("!I4s", data, pos)
        end = pos + 8 + length
        if length > 2**31 - 1 or not kind.isalpha() or end + 4 > len(data):
            return None
        body = view[pos + 8:end]
        if zlib.crc32(body, zlib.crc32(kind)) != struct.unpack_from("!I", data, end)[0]:
            return None
        pos = end + 4
        if header is None:
            if kind != b"IHDR" or length != 13:
                return None
            width, height, depth, colour, compression, filtering, interlace = struct.unpack("!2I5B", body)
            if depth != 16 or colour not in _PLANES or (compression, filtering) != (0, 0) or interlace not in (0, 1):
                return None
            colours, alpha = _PLANES[colour]
            planes = colours + alpha
            if width == 0 or height == 0 or (interlace and planes > 1):
                return None
            pixels = width * height if planes == 1 else width * 2 * planes * (height + 1)  # see _unfilter_lanes
            if Image.MAX_IMAGE_PIXELS is not None and pixels > Image.MAX_IMAGE_PIXELS:
                return None  # Pillow would warn or refuse; pypng reads it (slowly)
            header = (width, height, planes, interlace)
            # the length of each chunk pypng parses before IDAT (any other length makes it raise)
            lengths = {b"bKGD": 2 * colours, b"tRNS": None if alpha else 2 * colours, b"gAMA": 4, b"sBIT": planes,
                       b"pHYs": 9, b"PLTE": None, b"IHDR": None}
        elif kind == b"IEND":
            return (header, idat) if idat else None
        elif kind == b"IDAT":
            idat.append(body)
        elif not idat and lengths.get(kind, length) != length:  # pypng ignores the chunks after IDAT
            return None


def _inflate_exactly(idat: list[memoryview], size: int) -> bytes | None:
    """The ``size`` bytes the zlib stream of the IDAT bodies inflates to; None when it is broken or
    inflates to more or fewer bytes (decompression stops one byte past ``size``)."""
    inflate, parts, room = zlib.decompressobj(), [], size + 1
    try:
        for block in idat:
            parts.append(inflate.decompress(block, room))
            room -= len(parts[-1])
            if room == 0:
                return None
        parts.append(inflate.flush())
    except zlib.error:
        return None
    raw = b"".join(parts)
    return raw if len(raw) == size else None


def read_png16(path: str | Path, expected: str, fix: str, min_planes: int = 1) -> np.ndarray:
    """Read a 16-bit PNG exactly, shape (H, W, C) uint16 (C = its channels: 1 grey, 2 grey+alpha,
    3 RGB, 4 RGBA). A file that is not 16-bit or has fewer than ``min_planes`` channels raises an
    :class:`InputError` saying it is not ``expected``, with ``fix``.

    Well-formed files are decoded with zlib and Pillow (see the module docstring), anything else
    with pypng; both give the same values, and the errors are pypng's.
    """
    path = Path(path)
    try:
        fast = _decode_png16(path.read_bytes())
    except OSError:  # missing or unreadable: pypng below raises the usual error
        fast = None
    if fast is not None and fast.shape[2] >= min_planes:
        return fast
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
