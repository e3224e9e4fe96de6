"""Decode time of the 16-bit PNGs that ``cache`` reads: pypng (the reader before) vs ``read_png16``.

    python benchmarks/bench_png16.py                     # 1024x2048, best of 5
    python benchmarks/bench_png16.py --size 512x1024 --repeats 7

``selfpanoptic cache`` reads a Cityscapes ``*_disparity.png`` (16-bit grey) or a Synthia
``Depth/`` file (16-bit, the depth in centimetres in 3 equal RGB channels) per sample, and a
Synthia ``GT/LABELS`` file (16-bit RGB: class id, instance id) per Synthia sample, all through
:func:`selfpanoptic.pngio.read_png16`. This script makes one image of ``--size`` of each kind
from a toy Cityscapes scene (``selfpanoptic.toy``; the disparity with a stereo matcher's noise,
Gaussian 0.25 px, and 3 % invalid pixels, so that it compresses like a real one rather than like
flat planes), writes them to a temporary folder, and prints per file its size and the
milliseconds per image (best of ``--repeats``) of:

* ``before``: pypng's reader, as ``read_png16`` decoded every file before;
* ``after``: ``read_png16`` now (chunk and CRC checks, zlib, Pillow undoing the filters);
* ``Pillow alone``: ``np.asarray(Image.open(path))``, the floor, for grey only (it keeps 8 of
  the 16 bits of RGB).

Files are written as libpng (OpenCV, the datasets' tools) and Pillow write them: zlib level 6
and, per row, the PNG filter with the least sum of absolute byte values; the disparity also as
pypng writes it (no filter). Every reader's array is checked equal to the values written.
"""

from __future__ import annotations

import argparse
import struct
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np
import png
from PIL import Image

from selfpanoptic.pngio import read_png16
from selfpanoptic.toy.formats import cityscapes_disparity_png, synthia_depth_png, synthia_label_channels
from selfpanoptic.toy.scenes.compose import generate_scene
from selfpanoptic.toy.scenes.profiles import PROFILES


def make_images(height: int, width: int, seed: int = 0) -> dict[str, np.ndarray]:
    """(H, W, C) uint16 contents of a disparity, a Synthia depth and a Synthia label file of a toy scene."""
    rng = np.random.default_rng(seed)
    scene = generate_scene(rng, height, width, PROFILES["cityscapes"])
    disparity = cityscapes_disparity_png(scene.depth).astype(np.float64)
    disparity += rng.normal(0.0, 0.25 * 256, disparity.shape)
    disparity[rng.random(disparity.shape) < 0.03] = 0
    depth = synthia_depth_png(scene.depth)
    return {
        "disparity": np.clip(np.round(disparity), 0, 65535).astype(np.uint16)[:, :, None],
        "synthia depth": np.repeat(depth[:, :, None], 3, axis=2),
        "synthia labels": synthia_label_channels(scene.semantic, scene.instances),
    }


def filtered_scanlines(values: np.ndarray) -> bytes:
    """Scanlines of (H, W, C) uint16 with libpng's default choice of filter per row (least sum of
    absolute values of the filtered bytes, read as signed)."""
    height, width, planes = values.shape
    x = values.astype(">u2").view(np.uint8).reshape(height, -1).astype(np.int16)
    bpp = 2 * planes
    a, b, c = np.zeros_like(x), np.zeros_like(x), np.zeros_like(x)
    a[:, bpp:], b[1:], c[1:, bpp:] = x[:, :-bpp], x[:-1], x[:-1, :-bpp]
    p = a + b - c
    pa, pb, pc = np.abs(p - a), np.abs(p - b), np.abs(p - c)
    paeth = np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))
    candidates = np.stack([x, x - a, x - b, x - (a + b) // 2, x - paeth]) & 0xFF
    cost = np.minimum(candidates, 256 - candidates).sum(axis=2)
    best = cost.argmin(axis=0)
    rows = candidates[best, np.arange(height)].astype(np.uint8)
    return np.concatenate([best.astype(np.uint8)[:, None], rows], axis=1).tobytes()


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack("!I", len(body)) + kind + body + struct.pack("!I", zlib.crc32(body, zlib.crc32(kind)))


def write_libpng_like(path: Path, values: np.ndarray) -> None:
    height, width, planes = values.shape
    colour = {1: 0, 3: 2}[planes]
    header = struct.pack("!2I5B", width, height, 16, colour, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header)
                     + _chunk(b"IDAT", zlib.compress(filtered_scanlines(values), 6)) + _chunk(b"IEND", b""))


def write_pypng(path: Path, values: np.ndarray) -> None:
    height, width, planes = values.shape
    with open(path, "wb") as handle:
        png.Writer(width, height, greyscale=planes == 1, bitdepth=16).write(handle, values.reshape(height, -1).tolist())


def read_before(path: Path) -> np.ndarray:
    """The reader before: pypng, rows stacked into (H, W, C) uint16."""
    width, height, rows, info = png.Reader(filename=str(path)).read()
    return np.vstack([np.asarray(row, dtype=np.uint16) for row in rows]).reshape(height, width, info["planes"])


def read_after(path: Path) -> np.ndarray:
    return read_png16(path, "a 16-bit PNG", "")


def read_pillow(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im, dtype=np.uint16)[:, :, None]


def best_ms(reader, path: Path, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        reader(path)
        times.append(time.perf_counter() - start)
    return min(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="1024x2048", help="HEIGHTxWIDTH of the images (default 1024x2048)")
    parser.add_argument("--repeats", type=int, default=5, help="timed reads per reader and file; the best counts")
    args = parser.parse_args()
    height, width = (int(side) for side in args.size.split("x"))

    images = make_images(height, width)
    files = [("disparity", "grey", "libpng-like", write_libpng_like), ("disparity", "grey", "pypng", write_pypng),
             ("synthia depth", "RGB", "libpng-like", write_libpng_like),
             ("synthia labels", "RGB", "libpng-like", write_libpng_like)]
    print(f"16-bit PNG, {height}x{width}, ms per image (best of {args.repeats})\n")
    print("| file | channels | written as | MB | before (pypng) | after (read_png16) | Pillow alone | speed-up |")
    print("|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        for index, (kind, channels, writer_name, writer) in enumerate(files):
            path = Path(folder) / f"{index}.png"
            writer(path, images[kind])
            readers = {"before": read_before, "after": read_after}
            if channels == "grey":
                readers["pillow"] = read_pillow
            for name, reader in readers.items():
                if not np.array_equal(reader(path), images[kind]):
                    raise AssertionError(f"{name} does not read the {kind} file back exactly")
            ms = {name: best_ms(reader, path, args.repeats) for name, reader in readers.items()}
            pillow = f"{ms['pillow']:.1f}" if "pillow" in ms else "(8 bits)"
            print(f"| {kind} | {channels} | {writer_name} | {path.stat().st_size / 1e6:.2f} | {ms['before']:.0f} "
                  f"| {ms['after']:.1f} | {pillow} | {ms['before'] / ms['after']:.0f}x |")


if __name__ == "__main__":
    main()
