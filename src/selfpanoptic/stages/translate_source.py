"""``selfpanoptic translate-source``: render every source label map in the target's look.

Writes a translated source dataset: per source dataset a folder with that dataset's own layout,
holding the translated images (at the label files' size) and hard links to the original label
and instance files, plus ``provenance.json``; and its manifest, the source manifest's rows
pointing at those files (same order, same label statistics), which the cache stage reads.
"""

from __future__ import annotations

import argparse

from .common import COMPUTE, progress, settings, settings_parent, torch_setup

HELP = "render every source label map in the target's look with the trained translator"
PARENTS = [settings_parent("translation"), *COMPUTE]
FOLDER_OUTPUTS = ("out",)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--translator", required=True, help="translator model file (train-translator)")
    parser.add_argument("--source", required=True, help="source cache (HDF5) whose label maps are rendered")
    parser.add_argument("--manifest", required=True, help="the manifest that source cache was built from")
    parser.add_argument("--out", required=True, help="folder of the translated source dataset to write")
    parser.add_argument("--out-manifest", required=True, help="manifest CSV of the translated source to write")


def run(args: argparse.Namespace) -> None:
    import json
    from pathlib import Path

    import numpy as np
    import torch
    from tqdm import tqdm

    from ..atomic import atomic_output, atomic_write_text
    from ..data.base import resize_image
    from ..data.manifest import read_manifest
    from ..errors import InputError
    from ..inference import batches
    from ..intermediates import DatasetCache
    from ..models import load_model_file, model_from_file
    from ..pngio import write_png
    from ..translation import check_translator, link_or_copy, translate_labels, translated_paths

    section = settings(args, "translation")
    device = torch_setup(args)
    saved = load_model_file(args.translator, "translator")
    manifest = read_manifest(args.manifest)
    out = Path(args.out)
    with DatasetCache.open(args.source) as cache:
        if list(cache.image_ids) != manifest["image_id"].astype(str).tolist():
            raise InputError("the source cache does not list the manifest's images in its order", args.source,
                             "rebuild the cache from this manifest (rerun the cache_dataset rule)")
        check_translator(saved, args.translator, (cache.height, cache.width))
        generator = model_from_file(args.translator, "translator").to(device)
        # with a style code (generator.style_dim > 0) each image draws one: the same on every rerun
        torch.manual_seed(section["train"]["seed"])
        rows = list(manifest.itertuples(index=False))
        moved = [translated_paths(row, out) for row in rows]
        with atomic_output(out) as tmp:
            def staged(path: Path) -> Path:
                return tmp / path.relative_to(out)

            for idx in tqdm(list(batches(len(cache), section["batch_size"])), desc="translate source",
                            disable=not progress(args), unit="batch"):
                labels = np.stack([cache.read("labels", i) for i in idx])
                for i, image in zip(idx, translate_labels(generator, labels, device)):
                    row, paths = rows[i], moved[i]
                    target = staged(paths["image_path"])
                    target.parent.mkdir(parents=True, exist_ok=True)
                    write_png(target, resize_image(image, (int(row.height), int(row.width))))
                    for key in ("label_path", "instance_path"):
                        if paths[key] is not None and not staged(paths[key]).exists():
                            link_or_copy(getattr(row, key), staged(paths[key]))
            provenance = _provenance(args, saved, len(rows), [cache.height, cache.width])
            (tmp / "provenance.json").write_text(json.dumps(provenance, indent=2) + "\n")
    translated = manifest.copy()
    for key in ("root", "image_path", "label_path", "instance_path"):
        translated[key] = [str(p[key]) if p[key] is not None else "" for p in moved]
    atomic_write_text(args.out_manifest, translated.to_csv(index=False))
    print(f"translated {len(rows)} source images -> {out} (manifest {args.out_manifest})")


def _provenance(args: argparse.Namespace, saved: dict, images: int, size: list[int]) -> dict:
    """What ``provenance.json`` of the translated dataset says: the translator (``saved``: its
    model file's contents), the source, the number of images and their working size."""
    from .. import __version__

    return {
        "what": "source label maps rendered in the target's look by a label-to-image translator",
        "translator": str(args.translator), "labels_from": saved.get("labels_from"),
        "labels": saved.get("labels"), "source_cache": str(args.source), "manifest": str(args.manifest),
        "images": images, "size": size, "selfpanoptic": __version__,
        "note": "images are the translator's output upsampled bilinearly to the label files' size; "
                "label and instance files are the source's own (hard links)",
    }
