"""``selfpanoptic cache``: a manifest's samples at the working resolution in one HDF5 dataset cache.

The cache gets an ``inverse_depth`` stack (1/m, NaN = unknown) only when at least one sample of
the manifest has a depth file (Synthia ``Depth/``, Cityscapes ``disparity/``); rows of the
other samples (e.g. GTA5 images of a mixed cache) are NaN. Every stack is compressed with
``data.compression`` (see the config schema for the measured trade-off). The root attribute
``labelled`` is False when a sample has no label files (an unlabelled target split): its labels
are all ignore because there are none, not because every pixel was marked ignore.

With ``--threads N``, N worker processes decode, check and resize the samples
(:func:`selfpanoptic.data.parallel.ordered_map`); this process writes them in the manifest's order
as they arrive, so the cache holds the same arrays whatever N, and a few samples at a time.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import QUIET, THREADS, progress, settings, settings_parent

HELP = "write a manifest's samples at the working resolution to HDF5"
PARENTS = [settings_parent("data"), THREADS, QUIET]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--manifest", required=True, help="manifest CSV (from index or mix)")
    parser.add_argument("--out", required=True, help="HDF5 file to write")


def open_readers(manifest, size: tuple[int, int]) -> dict:
    """The readers of the datasets ``manifest`` lists, at the working ``size`` (height, width).

    Returns a dict mapping ``(dataset, root, split)`` to ``(reader, {image_id: position})``.
    """
    import json

    from ..data import open_dataset

    readers = {}
    for (name, fmt, root, split, options), _ in manifest.groupby(
            ["dataset", "format", "root", "split", "reader_options"], sort=False):
        reader = open_dataset(fmt, root, None if split == "all" else split, size=size,
                              options=json.loads(options) if options else None)
        readers[name, root, split] = (reader, {f.image_id: i for i, f in enumerate(reader.files)})
    return readers


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


def read_sample(readers: dict, task: tuple):
    """A worker's task: the sample at the working resolution (:class:`~selfpanoptic.data.Sample`).

    ``readers`` maps ``(dataset, root, split)`` to its reader; ``task`` is ``(key, position)``, the
    position None when the dataset no longer has the manifest's image (returns None: the writer
    says so, in its turn).
    """
    key, position = task
    return None if position is None else readers[key][position]


def write_samples(h5, manifest, readers: dict, has_depth: bool, args: argparse.Namespace) -> None:
    """Write every sample of ``manifest`` to its row of the cache ``h5``, read by ``--threads`` processes.

    Rows are written in order as the samples arrive: the stacks (``images`` (N, H, W, 3) uint8,
    ``labels`` (N, H, W) uint8, ``instances`` (N, H, W) int32, ``inverse_depth`` (N, H, W) float32
    when ``has_depth``) are the same whatever the number of processes.
    """
    from functools import partial

    import numpy as np
    from tqdm import tqdm

    from ..data.parallel import ordered_map
    from ..errors import InputError

    keys = list(zip(manifest["dataset"], manifest["root"], manifest["split"]))
    image_ids = list(manifest["image_id"])
    tasks = [(key, readers[key][1].get(image_id)) for key, image_id in zip(keys, image_ids)]
    work = partial(read_sample, {key: reader for key, (reader, _) in readers.items()})
    no_depth = np.full(h5["labels"].shape[1:], np.nan, dtype=np.float32)
    # One sample per task: each is megabytes, and tasks of whole images cost little next to decoding them.
    with ordered_map(work, tasks, args.threads, chunksize=1) as samples:
        bar = tqdm(samples, total=len(tasks), desc=f"cache {Path(args.out).name}", disable=not progress(args),
                   unit="img")
        for i, sample in enumerate(bar):
            if sample is None:
                raise InputError(f"image {image_ids[i]!r} listed in the manifest is no longer in the dataset",
                                 args.manifest, "rebuild the manifest (rerun the index_dataset rule)")
            h5["images"][i], h5["labels"][i], h5["instances"][i] = sample.image, sample.labels, sample.instances
            if has_depth:
                h5["inverse_depth"][i] = sample.inverse_depth if sample.inverse_depth is not None else no_depth


def run(args: argparse.Namespace) -> None:
    from ..classes import IGNORE
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
    readers = open_readers(manifest, size)
    image_ids = manifest["image_id"].astype(str)
    has_depth = manifest_has_depth(manifest, readers)
    stacks = [*(s for s in DatasetCache.STACKS if s not in DatasetCache.OPTIONAL_STACKS),
              *(["inverse_depth"] if has_depth else [])]
    with DatasetCache.create(args.out, image_ids, size, section, inputs=[args.manifest], stacks=stacks,
                             compression=section["compression"], ignore_label=IGNORE,
                             labelled=bool(manifest["labelled"].all())) as h5:
        write_strings(h5, "datasets", manifest["dataset"].astype(str))
        write_samples(h5, manifest, readers, has_depth, args)
    print(f"cached -> {args.out}")
