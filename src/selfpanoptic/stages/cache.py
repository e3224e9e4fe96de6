"""``selfpanoptic cache``: a manifest's samples at the working resolution in one HDF5 dataset cache.

The cache gets an ``inverse_depth`` stack (1/m, NaN = unknown) only when at least one sample of
the manifest has a depth file (Synthia ``Depth/``, Cityscapes ``disparity/``); rows of the
other samples (e.g. GTA5 images of a mixed cache) are NaN. Every stack is compressed with
``data.compression`` (see the config schema for the measured trade-off). The root attribute
``labelled`` is False when a sample has no label files (an unlabelled target split): its labels
are all ignore because there are none, not because every pixel was marked ignore.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import QUIET, progress, settings, settings_parent

HELP = "write a manifest's samples at the working resolution to HDF5"
PARENTS = [settings_parent("data"), QUIET]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--manifest", required=True, help="manifest CSV (from index or mix)")
    parser.add_argument("--out", required=True, help="HDF5 file to write")


def manifest_has_depth(manifest, readers) -> bool:
    """Whether any sample of ``manifest`` has a depth file (only looked up, none is decoded).

    ``readers`` maps ``(dataset, root, split)`` to ``(reader, {image_id: position})``.
    """
    for row in manifest.itertuples(index=False):
        reader, positions = readers[row.dataset, row.root, row.split]
        position = positions.get(row.image_id)
        if position is not None and reader.depth_path(reader.files[position]) is not None:
            return True
    return False


def run(args: argparse.Namespace) -> None:
    import json

    import numpy as np
    from tqdm import tqdm

    from ..classes import IGNORE
    from ..data import open_dataset
    from ..data.manifest import read_manifest
    from ..errors import InputError
    from ..h5io import write_strings
    from ..intermediates import DatasetCache

    section = settings(args, "data")
    manifest = read_manifest(args.manifest)
    if manifest.empty:  # an empty cache would only fail later, in training or prediction
        raise InputError("manifest lists no images (a header but no rows), so the cache would be empty",
                         args.manifest, "the index found no images: check the dataset root and globs in the config, "
                         "then rerun `selfpanoptic index` (the index_dataset rule)")
    size = (int(section["height"]), int(section["width"]))
    readers = {}
    for (name, fmt, root, split, options), _ in manifest.groupby(
            ["dataset", "format", "root", "split", "reader_options"], sort=False):
        reader = open_dataset(fmt, root, None if split == "all" else split, size=size,
                              options=json.loads(options) if options else None)
        readers[name, root, split] = (reader, {f.image_id: i for i, f in enumerate(reader.files)})

    image_ids = manifest["image_id"].astype(str)
    has_depth = manifest_has_depth(manifest, readers)
    stacks = [*(s for s in DatasetCache.STACKS if s not in DatasetCache.OPTIONAL_STACKS),
              *(["inverse_depth"] if has_depth else [])]
    with DatasetCache.create(args.out, image_ids, size, section, inputs=[args.manifest], stacks=stacks,
                             compression=section["compression"], ignore_label=IGNORE,
                             labelled=bool(manifest["labelled"].all())) as h5:
        write_strings(h5, "datasets", manifest["dataset"].astype(str))
        rows = manifest.itertuples(index=False)
        bar = tqdm(rows, total=len(manifest), desc=f"cache {Path(args.out).name}", disable=not progress(args), unit="img")
        for i, row in enumerate(bar):
            reader, positions = readers[row.dataset, row.root, row.split]
            if row.image_id not in positions:
                raise InputError(
                    f"image {row.image_id!r} listed in the manifest is no longer in the dataset",
                    args.manifest, "rebuild the manifest (rerun the index_dataset rule)",
                )
            sample = reader[positions[row.image_id]]
            h5["images"][i], h5["labels"][i], h5["instances"][i] = sample.image, sample.labels, sample.instances
            if has_depth:
                h5["inverse_depth"][i] = (sample.inverse_depth if sample.inverse_depth is not None
                                          else np.full(size, np.nan, dtype=np.float32))
    print(f"cached -> {args.out}")
