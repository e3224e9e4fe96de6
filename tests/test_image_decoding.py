"""read_rgb and image_size give the picture a viewer shows: 16-bit files scaled, EXIF orientation applied."""

from __future__ import annotations

import numpy as np
import png
import pytest
from PIL import Image

from selfpanoptic.errors import InputError
from selfpanoptic.pngio import image_size, read_rgb

GREY16 = np.array([[0, 257 * 100, 65535]], dtype=np.uint16)
"""Black, a mid grey and white as 16-bit samples: 0, 100 and 255 in 8 bits."""

SHIFT_VALUES = np.array([[255, 256, 32767, 65534]], dtype=np.uint16)
"""Samples where ``v >> 8`` (0, 1, 127, 255) and ``round(v / 257)`` (1, 1, 127, 255) differ or not."""


def _exif(orientation: int) -> Image.Exif:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif


def _blocky(height: int, width: int, block: int) -> np.ndarray:
    """(height, width, 3) uint8 of ``block``-pixel squares, each a distinct colour, one corner bright."""
    rows, cols = height // block, width // block
    cells = np.arange(rows * cols).reshape(rows, cols) * 20 + 10
    cells[0, 0] = 250  # the bright top-left corner
    picture = np.repeat(np.repeat(cells, block, 0), block, 1).astype(np.uint8)
    return np.stack([picture, picture // 2, 255 - picture], axis=-1)


def _block_means(image: np.ndarray, block: int) -> np.ndarray:
    height, width, channels = image.shape
    blocks = image.reshape(height // block, block, width // block, block, channels)
    return blocks.astype(float).mean(axis=(1, 3))


# What each EXIF orientation asks a viewer to do, written independently of Pillow's table.
DISPLAYED = {
    1: lambda a: a,
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.transpose(1, 0, 2),
    6: lambda a: np.rot90(a, -1),  # 90 degrees clockwise
    7: lambda a: a[::-1, ::-1].transpose(1, 0, 2),
    8: lambda a: np.rot90(a, 1),  # 90 degrees counter-clockwise
}


def test_16bit_grey_png_is_scaled_not_clipped(tmp_path):
    path = tmp_path / "grey16.png"
    png.from_array(GREY16, "L;16").save(str(path))
    image = read_rgb(path)
    assert image.dtype == np.uint8 and image.shape == (1, 3, 3)
    for channel in range(3):
        np.testing.assert_array_equal(image[..., channel], [[0, 100, 255]])


def test_8bit_grey_png_of_the_same_picture_reads_identically(tmp_path):
    png.from_array(GREY16, "L;16").save(str(tmp_path / "grey16.png"))
    Image.fromarray(np.array([[0, 100, 255]], dtype=np.uint8), "L").save(tmp_path / "grey8.png")
    np.testing.assert_array_equal(read_rgb(tmp_path / "grey8.png"), read_rgb(tmp_path / "grey16.png"))


@pytest.mark.parametrize("mode, planes", [("L;16", 1), ("LA;16", 2), ("RGB;16", 3), ("RGBA;16", 4)])
def test_every_16bit_png_keeps_the_high_byte(tmp_path, mode, planes):
    """Grey, grey+alpha, RGB and RGBA 16-bit PNGs all become ``v >> 8`` (alpha dropped)."""
    colour = np.stack([SHIFT_VALUES, SHIFT_VALUES[:, ::-1], SHIFT_VALUES], axis=-1)
    stored = {1: colour[..., :1], 2: np.concatenate([colour[..., :1], colour[..., 1:2]], -1),
              3: colour, 4: np.concatenate([colour, colour[..., :1]], -1)}[planes]
    path = tmp_path / "sixteen.png"
    png.from_array(stored.reshape(1, -1), mode).save(str(path))
    expected = (colour >> 8).astype(np.uint8) if planes >= 3 else np.repeat(stored[..., :1] >> 8, 3, -1)
    np.testing.assert_array_equal(read_rgb(path), expected)
    np.testing.assert_array_equal(read_rgb(path)[0, :, 0], [0, 1, 127, 255])


def test_16bit_rgb_png_matches_pypng_scaled(tmp_path):
    rng = np.random.default_rng(0)
    array = rng.integers(0, 65536, size=(3, 5, 3), dtype=np.uint16)
    path = tmp_path / "rgb16.png"
    png.from_array(array.reshape(3, 15), "RGB;16").save(str(path))
    _, _, rows, _ = png.Reader(filename=str(path)).read()
    exact = np.vstack([np.asarray(row, dtype=np.uint16) for row in rows]).reshape(3, 5, 3)
    np.testing.assert_array_equal(read_rgb(path), (exact >> 8).astype(np.uint8))


@pytest.mark.parametrize("mode, dtype", [("I", np.int32), ("F", np.float32)])
def test_32bit_images_are_refused_naming_the_file_and_the_fix(tmp_path, mode, dtype):
    path = tmp_path / f"wide_{mode}.tif"
    Image.fromarray(np.array([[0, 1000], [70000, 5]], dtype=dtype)).save(path)
    assert Image.open(path).mode == mode
    with pytest.raises(InputError) as info:
        read_rgb(path)
    message = str(info.value)
    assert str(path) in message and f"mode {mode}" in message
    assert "8-bit or 16-bit PNG or as a JPEG" in message


@pytest.mark.parametrize("orientation", range(1, 9))
def test_png_orientation_gives_the_displayed_picture_exactly(tmp_path, orientation):
    stored = _blocky(4, 6, 2)
    path = tmp_path / "oriented.png"
    Image.fromarray(stored).save(path, exif=_exif(orientation))
    image = read_rgb(path)
    np.testing.assert_array_equal(image, DISPLAYED[orientation](stored))
    assert image_size(path) == image.shape[:2]


def test_jpeg_with_orientation_6_reads_rotated_clockwise(tmp_path):
    stored = _blocky(16, 24, 8)  # 2 x 3 blocks, bright top-left
    path = tmp_path / "photo.jpg"
    # Full-resolution colour (no chroma subsampling) keeps every block mean within a few levels.
    Image.fromarray(stored).save(path, quality=95, subsampling=0, exif=_exif(6))
    image = read_rgb(path)
    assert image.shape == (24, 16, 3)
    assert image_size(path) == (24, 16)
    means = _block_means(image, 8)
    np.testing.assert_allclose(means, _block_means(np.rot90(stored, -1), 8), atol=4)
    # the bright corner is now top-right, as a viewer shows the photo
    assert means[0, 1, 0] > 240 and means[..., 0].argmax() == 1


@pytest.mark.parametrize("exif", [None, 1])
def test_jpeg_without_rotation_is_unchanged(tmp_path, exif):
    stored = _blocky(16, 24, 8)
    path = tmp_path / "photo.jpg"
    extra = {} if exif is None else {"exif": _exif(exif)}
    Image.fromarray(stored).save(path, quality=95, subsampling=0, **extra)
    image = read_rgb(path)
    assert image.shape == (16, 24, 3) and image_size(path) == (16, 24)
    np.testing.assert_allclose(_block_means(image, 8), _block_means(stored, 8), atol=4)


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_image_size_reads_orientation_without_decoding_pixels(tmp_path, suffix):
    """A file cut in its pixel data still has a size; reading its pixels names the file."""
    whole, path = tmp_path / f"whole{suffix}", tmp_path / f"cut{suffix}"
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 256, (32, 48, 3), dtype=np.uint8)).save(whole, exif=_exif(8))
    path.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    assert image_size(path) == (48, 32)
    with pytest.raises(InputError) as info:
        read_rgb(path)
    assert str(path) in str(info.value) and "cannot decode" in str(info.value)


def test_png_exif_after_the_pixels_is_ignored_by_both(tmp_path):
    """An eXIf chunk after IDAT (the PNG spec puts it before) must not make the two disagree."""
    Image.fromarray(_blocky(4, 6, 2)).save(tmp_path / "before.png", exif=_exif(6))
    chunks = list(png.Reader(filename=str(tmp_path / "before.png")).chunks())
    exif = [chunk for chunk in chunks if chunk[0] == b"eXIf"]
    rest = [chunk for chunk in chunks if chunk[0] != b"eXIf"]
    path = tmp_path / "after.png"
    with open(path, "wb") as handle:
        png.write_chunks(handle, rest[:-1] + exif + rest[-1:])
    assert read_rgb(path).shape[:2] == image_size(path) == (4, 6)


def test_missing_file_names_it(tmp_path):
    for read in (read_rgb, image_size):
        with pytest.raises(InputError, match="does not exist") as info:
            read(tmp_path / "absent.jpg")
        assert "absent.jpg" in str(info.value)
