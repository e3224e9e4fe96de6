"""The training caches: a dataset (or the mixed source) at the working resolution in one HDF5 file.

Layout (N images of H x W):

- ``images`` (N, H, W, 3) uint8 RGB
- ``labels`` (N, H, W) uint8 trainIds, 255 = ignore
- ``instances`` (N, H, W) int32, 0 = no instance
- ``image_ids``, ``datasets`` (N,) strings: which sample of which dataset each row is

Each dataset is chunked one image per chunk, so reading a random image touches one chunk.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from ..classes import CLASS_NAMES, IGNORE
from ..errors import InputError
from ..h5io import atomic_h5, create_stack, write_strings
from . import open_dataset
from .manifest import read_manifest

STAGE = "dataset_cache"


def write_cache(
    manifest_path: str | Path, out: str | Path, settings: dict[str, Any], progress: bool = True
) -> Path:
    """Decode every sample of a manifest, resize to ``settings`` height x width and write ``out``.

    ``settings`` is the config's ``data`` section. Returns the path written.
    """
    manifest = read_manifest(manifest_path)
    size = (int(settings["height"]), int(settings["width"]))
    readers = {}
    for (name, fmt, root, split), _ in manifest.groupby(["dataset", "format", "root", "split"], sort=False):
        reader = open_dataset(fmt, root, None if split == "all" else split, size=size)
        readers[name, root, split] = (reader, {f.image_id: i for i, f in enumerate(reader.files)})

    count = len(manifest)
    with atomic_h5(out, STAGE, settings, inputs=[manifest_path]) as h5:
        h5.attrs["class_names"] = list(CLASS_NAMES)
        h5.attrs["ignore_label"] = IGNORE
        images = create_stack(h5, "images", count, (*size, 3), np.uint8, description="RGB image")
        labels = create_stack(h5, "labels", count, size, np.uint8, description="trainIds, 255 = ignore")
        instances = create_stack(h5, "instances", count, size, np.int32, description="instance ids, 0 = none")
        write_strings(h5, "image_ids", manifest["image_id"].astype(str))
        write_strings(h5, "datasets", manifest["dataset"].astype(str))
        rows = manifest.itertuples(index=False)
        for i, row in enumerate(tqdm(rows, total=count, desc=f"cache {Path(out).name}", disable=not progress, unit="img")):
            reader, positions = readers[row.dataset, row.root, row.split]
            if row.image_id not in positions:
                raise InputError(
                    f"image {row.image_id!r} listed in the manifest is no longer in the dataset",
                    manifest_path, "rebuild the manifest (rerun the index_dataset rule)",
                )
            sample = reader[positions[row.image_id]]
            images[i], labels[i], instances[i] = sample.image, sample.labels, sample.instances
    return Path(out)

