"""How to store the dataset cache: file size and decode cost per image of each HDF5 filter and of PNG.

    python benchmarks/bench_cache_format.py                      # 512x1024 and 64x128, best of 5
    python benchmarks/bench_cache_format.py --sizes 512x1024 --images 16 --repeats 7

Training reads the cache (``selfpanoptic.intermediates.DatasetCache``) one image at a time:
an RGB image (H, W, 3) uint8, trainIds (H, W) uint8 and instance ids (H, W) int32, each stored
chunked one image per chunk. This script writes the same three arrays of ``--images`` images
to real HDF5 files in a temporary folder, once per format:

* ``gzip-1``, ``gzip-4`` (the writer's setting before ``data.compression`` existed), ``lzf``:
  HDF5 filters, with the byte-shuffle filter in front, as the cache writer does;
* ``none``: no filter (the raw arrays, chunked);
* ``png``: each array as PNG bytes (Pillow's default level 6; instance ids as 16-bit PNG, as
  Cityscapes stores them) in a variable-length uint8 dataset, decoded with Pillow
  (OpenCV's ``cv2.imdecode`` when it is installed).

Then it reads every image back (all three arrays, through ``h5py``, file opened once),
best of ``--repeats`` passes, and prints per image: the file size (MB), the decode time (ms)
and the write time (ms, encoding included). The images are the toy target domain's renders
(``selfpanoptic.toy``: street scenes with textures, haze, blur and sensor noise, instance ids
encoded as Cityscapes ``labelId * 1000 + k``), not random noise (incompressible) nor flat
colour (compresses to nothing); real photographs compress worse than these renders.
"""

from __future__ import annotations

import argparse
import io
import os
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
from PIL import Image

from selfpanoptic.toy.formats import cityscapes_instance_ids
from selfpanoptic.toy.render import STYLES, render_scene
from selfpanoptic.toy.scenes.compose import generate_scene
from selfpanoptic.toy.scenes.profiles import PROFILES

try:
    import cv2
except ImportError:  # optional: Pillow decodes PNG otherwise
    cv2 = None

FILTERS = {
    "gzip-1": {"compression": "gzip", "compression_opts": 1, "shuffle": True},
    "gzip-4": {"compression": "gzip", "compression_opts": 4, "shuffle": True},
    "lzf": {"compression": "lzf", "shuffle": True},
    "none": {},
}
"""The HDF5 filter settings of each format; ``png`` is stored differently (see :func:`write_png`)."""
FORMATS = [*FILTERS, "png"]
KEYS = ("images", "labels", "instances")


def make_samples(count: int, height: int, width: int, seed: int = 0) -> dict[str, np.ndarray]:
    """``count`` rendered target-domain scenes: images (N, H, W, 3) uint8, labels, instances."""
    images, labels, instances = [], [], []
    for index in range(count):
        rng = np.random.default_rng([seed, index])
        scene = generate_scene(rng, height, width, PROFILES["cityscapes"])
        images.append(render_scene(scene, STYLES["cityscapes"], rng))
        labels.append(scene.semantic)
        ids = cityscapes_instance_ids(scene.semantic, scene.instances, scene.instance_classes)
        instances.append(np.where(scene.instances > 0, ids, 0).astype(np.int32))
    return {"images": np.stack(images), "labels": np.stack(labels), "instances": np.stack(instances)}


def write_filtered(path: Path, samples: dict[str, np.ndarray], options: dict) -> None:
    """One dataset per key, one image per chunk, with the HDF5 filter ``options``."""
    with h5py.File(path, "w") as h5:
        for key in KEYS:
            data = samples[key]
            dataset = h5.create_dataset(key, shape=data.shape, dtype=data.dtype, chunks=(1, *data.shape[1:]), **options)
            for i in range(len(data)):
                dataset[i] = data[i]


def png_bytes(array: np.ndarray) -> np.ndarray:
    """PNG encoding of an image (uint8 RGB or grey, or ids that fit 16 bits) as a uint8 array."""
    if array.dtype == np.int32:
        array = array.astype(np.uint16)  # Cityscapes ids (< 34000) fit 16 bits, as in its PNGs
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return np.frombuffer(buffer.getvalue(), dtype=np.uint8)


def decode_png(data: np.ndarray, dtype) -> np.ndarray:
    if cv2 is not None:
        array = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
        array = array[..., ::-1] if array.ndim == 3 else array  # OpenCV decodes to BGR
    else:
        array = np.asarray(Image.open(io.BytesIO(data.tobytes())))
    return array.astype(dtype, copy=False)


def write_png(path: Path, samples: dict[str, np.ndarray]) -> None:
    """One variable-length uint8 dataset per key, one PNG per image."""
    with h5py.File(path, "w") as h5:
        for key in KEYS:
            data = samples[key]
            dataset = h5.create_dataset(key, shape=(len(data),), dtype=h5py.vlen_dtype(np.uint8))
            for i in range(len(data)):
                dataset[i] = png_bytes(data[i])


def read_all(path: Path, fmt: str, samples: dict[str, np.ndarray]) -> float:
    """Seconds of one pass reading every image (its three arrays) of the file, opened once."""
    count = len(samples["labels"])
    with h5py.File(path, "r") as h5:
        datasets = [(h5[key], samples[key].dtype) for key in KEYS]
        start = time.perf_counter()
        for i in range(count):
            for dataset, dtype in datasets:
                decode_png(dataset[i], dtype) if fmt == "png" else dataset[i]
        return time.perf_counter() - start


def check_round_trip(path: Path, fmt: str, samples: dict[str, np.ndarray]) -> None:
    with h5py.File(path, "r") as h5:
        for key in KEYS:
            for i in (0, len(samples[key]) - 1):
                got = decode_png(h5[key][i], samples[key].dtype) if fmt == "png" else h5[key][i]
                if not np.array_equal(got, samples[key][i]):
                    raise AssertionError(f"{fmt}: {key}[{i}] does not read back identically")


def measure(samples: dict[str, np.ndarray], folder: Path, repeats: int) -> list[tuple[str, float, float, float]]:
    """``(format, MB per image, decode ms per image, write ms per image)`` of every format."""
    count = len(samples["labels"])
    rows = []
    for fmt in FORMATS:
        path = folder / f"{fmt}.h5"
        start = time.perf_counter()
        if fmt == "png":
            write_png(path, samples)
        else:
            write_filtered(path, samples, FILTERS[fmt])
        write_s = time.perf_counter() - start
        check_round_trip(path, fmt, samples)
        decode_s = min(read_all(path, fmt, samples) for _ in range(repeats))
        rows.append((fmt, path.stat().st_size / 2**20 / count, 1000 * decode_s / count, 1000 * write_s / count))
        path.unlink()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["512x1024", "64x128"], metavar="HxW",
                        help="image sizes (default 512x1024 64x128)")
    parser.add_argument("--images", type=int, default=8,
                        help="images per file at 512x1024; smaller sizes get proportionally more, up to 256 (default 8)")
    parser.add_argument("--repeats", type=int, default=5, help="read passes; the fastest counts (default 5)")
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} CPUs; h5py {h5py.__version__}, HDF5 {h5py.version.hdf5_version}; "
          f"PNG decoded by {'OpenCV' if cv2 is not None else 'Pillow'}; best of {args.repeats} read passes")
    with tempfile.TemporaryDirectory(prefix="bench-cache-") as tmp:
        for size in args.sizes:
            height, width = (int(v) for v in size.lower().split("x"))
            count = min(256, max(args.images, args.images * 512 * 1024 // (height * width)))
            samples = make_samples(count, height, width)
            raw = sum(samples[key][0].nbytes for key in KEYS) / 2**20
            print(f"\n{height}x{width}, {count} images (raw {raw:.3f} MB per image: RGB + uint8 labels + int32 instances)\n")
            print("| format | MB per image | ratio | decode ms per image | write ms per image |")
            print("|---|---:|---:|---:|---:|")
            for fmt, mb, decode_ms, write_ms in measure(samples, Path(tmp), args.repeats):
                print(f"| {fmt} | {mb:.4f} | {raw / mb:.1f} | {decode_ms:.3f} | {write_ms:.2f} |", flush=True)


if __name__ == "__main__":
    main()
