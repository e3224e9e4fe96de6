"""read_png16: 16-bit PNGs decoded with zlib + Pillow give exactly pypng's arrays and errors.

The reference is ``read_png16`` with the fast path switched off, i.e. pypng alone (the reader
before). Every hand-made file is read both ways and the outcomes compared: the same array
(values, dtype, shape) or the same exception (type, message, file).
"""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import png
import pytest
from PIL import Image

from selfpanoptic import pngio
from selfpanoptic.errors import InputError
from selfpanoptic.pngio import read_png16, read_png16_channels

SIGNATURE = b"\x89PNG\r\n\x1a\n"
EDGE_VALUES = [0, 1, 255, 256, 65535, 257, 32768, 65280, 65534]
SIZES = [(1, 1), (1, 7), (7, 1), (3, 5), (5, 3), (9, 13), (16, 16), (17, 33)]
COLOUR_TYPE = {1: 0, 2: 4, 3: 2, 4: 6}
"""Channels -> PNG colour type: grey, grey+alpha, RGB, RGBA."""


def chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack("!I", len(body)) + kind + body + struct.pack("!I", zlib.crc32(body, zlib.crc32(kind)))


def ihdr(width: int, height: int, depth: int = 16, colour: int = 0, interlace: int = 0, compression: int = 0) -> bytes:
    return chunk(b"IHDR", struct.pack("!2I5B", width, height, depth, colour, compression, 0, interlace))


def png_file(width, height, raw: bytes, *, planes=1, interlace=0, before=b"", after=b"", split=1, level=6) -> bytes:
    """A 16-bit PNG whose inflated IDAT data is ``raw`` (filter bytes included), in ``split`` IDATs."""
    compressed = zlib.compress(raw, level)
    step = -(-len(compressed) // split)
    idats = b"".join(chunk(b"IDAT", compressed[i:i + step]) for i in range(0, len(compressed), step))
    head = ihdr(width, height, colour=COLOUR_TYPE[planes], interlace=interlace)
    return SIGNATURE + head + before + idats + after + chunk(b"IEND", b"")


def write_pypng(path, values: np.ndarray, interlace: bool = False) -> None:
    """(H, W, C) uint16 written by pypng (every row unfiltered)."""
    height, width, planes = values.shape
    with open(path, "wb") as handle:
        png.Writer(width, height, greyscale=planes <= 2, alpha=planes in (2, 4), bitdepth=16,
                   interlace=interlace).write(handle, values.reshape(height, -1).tolist())


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else b if pb <= pc else c


def filtered(values: np.ndarray, types) -> bytes:
    """Non-interlaced scanlines of (H, W, C) uint16 ``values``, row y filtered with ``types[y]`` (0-4)."""
    height, _, planes = values.shape
    bpp = 2 * planes
    rows = [bytes(row) for row in values.astype(">u2").view(np.uint8).reshape(height, -1)]
    out, previous = bytearray(), bytes(len(rows[0]))
    for row, kind in zip(rows, types):
        line = bytearray()
        for i, x in enumerate(row):
            a, b, c = (row[i - bpp] if i >= bpp else 0), previous[i], (previous[i - bpp] if i >= bpp else 0)
            predictor = (0, a, b, (a + b) // 2, _paeth(a, b, c))[kind]
            line.append((x - predictor) & 0xFF)
        out += bytes([kind]) + line
        previous = row
    return bytes(out)


def outcome(path, reader=read_png16):
    try:
        array = reader(path, "a 16-bit test PNG", "fix it") if reader is read_png16 else reader(path)
    except Exception as exc:  # noqa: BLE001 - the outcome compared is the exception
        return ("error", type(exc), str(exc), getattr(exc, "path", None))
    return ("array", array.dtype, array.shape, array.flags.c_contiguous, array.flags.writeable, array.tobytes())


def pypng_outcome(path, monkeypatch, reader=read_png16):
    """What the reader gave before: pypng alone."""
    with monkeypatch.context() as patch:
        patch.setattr(pngio, "_decode_png16", lambda data: None)
        return outcome(path, reader)


def assert_same_as_pypng(path, monkeypatch, reader=read_png16):
    expected = pypng_outcome(path, monkeypatch, reader)
    assert outcome(path, reader) == expected
    return expected


def assert_fast(path, values, monkeypatch):
    """The fast path decodes the file to ``values`` (H, W, C), and read_png16 returns what pypng returns."""
    fast = pngio._decode_png16(path.read_bytes())
    assert fast is not None, "expected the zlib + Pillow path"
    np.testing.assert_array_equal(fast, values)
    assert_same_as_pypng(path, monkeypatch)
    array = read_png16(path, "x", "y")
    assert array.dtype == np.uint16 and array.shape == values.shape and array.flags.writeable
    np.testing.assert_array_equal(array, values)
    if values.shape[2] >= 3:
        assert_same_as_pypng(path, monkeypatch, read_png16_channels)


def edge_image(height: int, width: int, planes: int = 1, seed: int = 0) -> np.ndarray:
    """(H, W, C) uint16: the edge values first, then random values, so that every filter has work."""
    rng = np.random.default_rng([seed, height, width, planes])
    values = rng.integers(0, 65536, (height, width, planes)).astype(np.uint16)
    flat = values.reshape(-1)
    flat[: min(flat.size, len(EDGE_VALUES))] = EDGE_VALUES[: flat.size]
    return values


@pytest.mark.parametrize("height,width", SIZES)
def test_grey_files_written_by_pypng_and_pillow(tmp_path, monkeypatch, height, width):
    values = edge_image(height, width)
    by_pypng, by_pillow, interlaced = tmp_path / "pypng.png", tmp_path / "pillow.png", tmp_path / "adam7.png"
    write_pypng(by_pypng, values)
    Image.fromarray(values[..., 0]).save(by_pillow)  # a filter per row, as libpng (OpenCV) writes
    write_pypng(interlaced, values, interlace=True)
    for path in (by_pypng, by_pillow, interlaced):
        assert_fast(path, values, monkeypatch)


@pytest.mark.parametrize("planes", [2, 3, 4])
@pytest.mark.parametrize("height,width", SIZES)
def test_alpha_and_colour_files_written_by_pypng(tmp_path, monkeypatch, planes, height, width):
    """Grey+alpha, RGB (Synthia labels and depth) and RGBA: Pillow alone would keep 8 bits of them."""
    values = edge_image(height, width, planes)
    write_pypng(tmp_path / "f.png", values)
    assert_fast(tmp_path / "f.png", values, monkeypatch)


@pytest.mark.parametrize("kind", [0, 1, 2, 3, 4, "mixed"])
@pytest.mark.parametrize("planes", [1, 2, 3, 4])
@pytest.mark.parametrize("height,width", [(1, 1), (4, 3), (6, 11)])
def test_every_filter_type(tmp_path, monkeypatch, kind, planes, height, width):
    values = edge_image(height, width, planes, seed=1)
    types = [y % 5 for y in range(height)] if kind == "mixed" else [kind] * height
    path = tmp_path / "f.png"
    path.write_bytes(png_file(width, height, filtered(values, types), planes=planes))
    assert_fast(path, values, monkeypatch)


def test_constant_images_of_the_edge_values(tmp_path, monkeypatch):
    for value in EDGE_VALUES:
        for planes in (1, 3):
            values = np.full((3, 5, planes), value, dtype=np.uint16)
            path = tmp_path / f"{value}-{planes}.png"
            path.write_bytes(png_file(5, 3, filtered(values, [4, 3, 1]), planes=planes))
            assert_fast(path, values, monkeypatch)


def test_random_filtered_bytes_decode_as_pypng_does(tmp_path, monkeypatch):
    """Scanlines of random bytes and filter types (wrap-around in every filter), grey ones interlaced too."""
    rng = np.random.default_rng(2)
    for trial in range(24):
        height, width, planes = int(rng.integers(1, 12)), int(rng.integers(1, 12)), 1 + trial % 4
        interlace = int(planes == 1 and trial % 8 == 0)
        scanlines = pngio._scanlines(width, height, 2 * planes, bool(interlace))
        raw = bytearray(rng.integers(0, 256, sum(line * rows for line, rows in scanlines), dtype=np.uint8).tobytes())
        offset = 0
        for line, rows in scanlines:
            for row in range(rows):
                raw[offset + row * line] = int(rng.integers(0, 5))
            offset += line * rows
        path = tmp_path / f"r{trial}.png"
        path.write_bytes(png_file(width, height, bytes(raw), planes=planes, interlace=interlace, split=1 + trial % 3))
        assert pngio._decode_png16(path.read_bytes()) is not None
        assert_same_as_pypng(path, monkeypatch)


@pytest.mark.parametrize("planes", [1, 3])
def test_ancillary_chunks_and_idat_splits(tmp_path, monkeypatch, planes):
    values = edge_image(5, 7, planes)
    raw = filtered(values, [4, 1, 2, 3, 0])
    before = (chunk(b"gAMA", struct.pack("!I", 45455)) + chunk(b"sBIT", b"\x10" * planes)
              + chunk(b"tRNS", b"\x00\x01" * planes) + chunk(b"bKGD", b"\x00\x00" * planes)
              + chunk(b"pHYs", struct.pack("!IIB", 1, 1, 1)) + chunk(b"tEXt", b"Software\x00test")
              + chunk(b"zzZz", b"anything"))
    after = chunk(b"tEXt", b"after\x00idat") + chunk(b"tIME", b"\x07\xea\x01\x01\x00\x00\x00")
    for split in (1, 2, 5):
        path = tmp_path / f"s{split}.png"
        path.write_bytes(png_file(7, 5, raw, planes=planes, before=before, after=after, split=split, level=9))
        assert_fast(path, values, monkeypatch)
    # IDAT chunks with another chunk between them: pypng joins them, and so does the fast path
    compressed = zlib.compress(raw)
    gap = chunk(b"IDAT", compressed[:10]) + chunk(b"tEXt", b"k\x00v") + chunk(b"IDAT", compressed[10:])
    path = tmp_path / "gap.png"
    head = ihdr(7, 5, colour=COLOUR_TYPE[planes])
    path.write_bytes(SIGNATURE + head + gap + chunk(b"IEND", b"") + b"trailing bytes after IEND")
    assert_fast(path, values, monkeypatch)


def test_other_files_keep_pypng(tmp_path, monkeypatch):
    """Interlaced files with colour or alpha, and 8-bit files, are read by pypng."""
    for planes in (2, 3, 4):
        values = edge_image(5, 3, planes)
        path = tmp_path / f"adam7-{planes}.png"
        write_pypng(path, values, interlace=True)
        assert pngio._decode_png16(path.read_bytes()) is None
        np.testing.assert_array_equal(read_png16(path, "x", "y"), values)
    grey8 = tmp_path / "grey8.png"
    Image.fromarray(np.arange(15, dtype=np.uint8).reshape(3, 5)).save(grey8)
    assert pngio._decode_png16(grey8.read_bytes()) is None
    error = assert_same_as_pypng(grey8, monkeypatch)
    assert error[1] is InputError and "expected a 16-bit test PNG, found 8-bit with 1 channel(s)" in error[2]
    rgb8 = tmp_path / "rgb8.png"
    Image.fromarray(np.zeros((3, 5, 3), dtype=np.uint8)).save(rgb8)
    error = assert_same_as_pypng(rgb8, monkeypatch, read_png16_channels)
    assert error[1] is InputError and "expected a 16-bit PNG with 3 or 4 channels, found 8-bit with 3" in error[2]
    # a good 16-bit grey or grey+alpha file where 3 channels are required: pypng's error
    for planes in (1, 2):
        path = tmp_path / f"few-{planes}.png"
        write_pypng(path, edge_image(3, 5, planes))
        error = assert_same_as_pypng(path, monkeypatch, read_png16_channels)
        assert error[1] is InputError and f"found 16-bit with {planes} channel(s)" in error[2]


LOOSE_ERRORS = {
    "empty": (EOFError, "End of PNG stream."),
    "one row short": (ValueError, "cannot reshape array of size 45 into shape (6,9,1)"),
}
"""Files on which the pypng reader raised something other than an InputError before; unchanged."""


def test_broken_files_give_pypng_errors(tmp_path, monkeypatch):
    values = edge_image(6, 9)
    raw = filtered(values, [0, 1, 2, 3, 4, 4])
    good = png_file(9, 6, raw, split=3)
    idat_at = good.index(b"IDAT") - 4
    rgba = filtered(edge_image(6, 9, 4), [0, 1, 2, 3, 4, 4])

    def single(head: bytes, stream: bytes) -> bytes:
        return SIGNATURE + head + chunk(b"IDAT", stream) + chunk(b"IEND", b"")

    cases = {
        "missing": None,
        "empty": b"",
        "not a png": b"GIF89a not a png at all",
        "jpeg-ish": b"\xff\xd8\xff\xe0" + bytes(100),
        "signature only": SIGNATURE,
        "bad crc in IDAT": good[:idat_at + 10] + bytes([good[idat_at + 10] ^ 1]) + good[idat_at + 11:],
        "bad crc in IHDR": good[:20] + bytes([good[20] ^ 0x40]) + good[21:],
        "no IEND": good[:-12],
        "no IDAT": SIGNATURE + ihdr(9, 6) + chunk(b"IEND", b""),
        "bad chunk type": good[:idat_at] + struct.pack("!I", 1) + b"ID@T" + b"x" + b"\0\0\0\0" + good[idat_at:],
        "chunk too large": SIGNATURE + ihdr(9, 6) + struct.pack("!I4s", 2**31, b"IDAT"),
        "bad filter type": png_file(9, 6, raw[:19] + b"\x05" + raw[20:]),
        "bad filter type, RGBA": png_file(9, 6, rgba[:73] + b"\x07" + rgba[74:], planes=4),
        "one row short": png_file(9, 6, raw[:-19]),
        "half a row short": png_file(9, 6, raw[:-9]),
        "RGBA half a row short": png_file(9, 6, rgba[:-20], planes=4),
        "zlib stream cut, rows whole": single(ihdr(9, 6), zlib.compress(raw)[:-4]),
        "zlib stream cut mid-data": single(ihdr(9, 6), zlib.compress(raw, 0)[:60]),
        "bad adler32": single(ihdr(9, 6), zlib.compress(raw)[:-1] + b"\0"),
        "not zlib": single(ihdr(9, 6), b"garbage!" * 8),
        "data after the zlib stream": single(ihdr(9, 6), zlib.compress(raw) + b"junk"),
        "bad tRNS": png_file(9, 6, raw, before=chunk(b"tRNS", b"\0\0\0")),
        "tRNS with alpha": png_file(9, 6, rgba, planes=4, before=chunk(b"tRNS", b"\0\0" * 3)),
        "bad bKGD in RGB": png_file(9, 6, filtered(edge_image(6, 9, 3), [1] * 6), planes=3,
                                    before=chunk(b"bKGD", b"\0\0")),
        "bad sBIT": png_file(9, 6, rgba, planes=4, before=chunk(b"sBIT", b"\x10" * 3)),
        "bad gAMA": png_file(9, 6, raw, before=chunk(b"gAMA", b"\0")),
        "PLTE in grey": png_file(9, 6, raw, before=chunk(b"PLTE", b"\0\0\0")),
        "bad compression method": single(ihdr(9, 6, compression=1), zlib.compress(raw)),
        "bad interlace method": single(ihdr(9, 6, interlace=2), zlib.compress(raw)),
        "bad bit depth": single(ihdr(9, 6, depth=12), zlib.compress(raw)),
        "16-bit palette": single(ihdr(9, 6, colour=3), zlib.compress(raw)),
    }
    for name, data in cases.items():
        path = tmp_path / (name.replace(" ", "_").replace(",", "") + ".png")
        if data is not None:
            path.write_bytes(data)
        expected = assert_same_as_pypng(path, monkeypatch)
        if name in ("zlib stream cut, rows whole", "data after the zlib stream", "PLTE in grey"):
            assert expected[0] == "array", name  # pypng reads these; so does read_png16, identically
        elif name in LOOSE_ERRORS:
            assert expected[:3] == ("error", *LOOSE_ERRORS[name]), name
        else:
            assert expected[:2] == ("error", InputError), name
            assert str(path) in expected[2], name
            assert ("does not exist" if name == "missing" else "cannot decode 16-bit PNG") in expected[2], name
    # a folder, not a file
    (tmp_path / "folder.png").mkdir()
    assert assert_same_as_pypng(tmp_path / "folder.png", monkeypatch)[1] is InputError


@pytest.mark.parametrize("planes", [1, 3])
def test_corrupted_files_fuzz(tmp_path, monkeypatch, planes):
    """Truncations and byte changes anywhere (CRCs fixed up or not) read as with pypng alone."""
    values = edge_image(7, 10, planes, seed=4)
    good = png_file(10, 7, filtered(values, [4, 3, 2, 1, 0, 4, 3]), planes=planes, split=2,
                    before=chunk(b"gAMA", struct.pack("!I", 45455)))
    rng = np.random.default_rng(5)
    path = tmp_path / "fuzz.png"
    kinds = set()
    for trial in range(160):
        data = bytearray(good)
        if trial % 4 == 0:
            data = data[: int(rng.integers(0, len(good)))]
        else:
            for _ in range(1 + trial % 3):
                data[int(rng.integers(8, len(data)))] = int(rng.integers(0, 256))
            if trial % 2:  # recompute every CRC, so that the change reaches zlib and the scanlines
                data = bytearray(_fix_crcs(bytes(data)))
        path.write_bytes(bytes(data))
        kinds.add(assert_same_as_pypng(path, monkeypatch)[0])
    assert kinds == {"array", "error"}


def _fix_crcs(data: bytes) -> bytes:
    out, pos = bytearray(data[:8]), 8
    while pos + 8 <= len(data):
        length, kind = struct.unpack_from("!I4s", data, pos)
        body = data[pos + 8: pos + 8 + length]
        if len(body) != length or pos + 12 + length > len(data):
            out += data[pos:]
            break
        out += data[pos: pos + 8 + length] + struct.pack("!I", zlib.crc32(body, zlib.crc32(kind)))
        pos += 12 + length
    else:
        out += data[pos:]
    return bytes(out)


def test_over_pillows_pixel_limit_pypng_reads_it(tmp_path, monkeypatch):
    for planes in (1, 3):
        values = edge_image(4, 6, planes)
        path = tmp_path / f"big-{planes}.png"
        write_pypng(path, values)
        monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10)
        assert pngio._decode_png16(path.read_bytes()) is None
        np.testing.assert_array_equal(read_png16(path, "x", "y"), values)
        monkeypatch.undo()


def test_pillow_alone_keeps_8_bits_of_16_bit_colour():
    """Why 16-bit RGB does not go through Pillow as it is: Pillow keeps the high byte of each sample."""
    values = np.array([[[256, 1, 65535], [65535, 255, 0]]], dtype=np.uint16)
    buffer = io.BytesIO()
    png.Writer(2, 1, greyscale=False, bitdepth=16).write(buffer, values.reshape(1, -1).tolist())
    with Image.open(io.BytesIO(buffer.getvalue())) as im:
        assert im.mode == "RGB"
        assert np.asarray(im).tolist() == (values >> 8).tolist()
    assert pngio._decode_png16(buffer.getvalue()).tolist() == values.tolist()
